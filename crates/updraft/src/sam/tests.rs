//! The mapping of real templates (AWS's public samples, in `tests/sam`), and the
//! errors for what cannot be mapped.

use std::path::{Path, PathBuf};

use super::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sam").join(name)
}

fn convert_fixture(name: &str) -> Converted {
    let dir = fixture(name);
    let text = std::fs::read_to_string(dir.join("template.yaml")).unwrap();
    convert(&text, "template.yaml", &dir, &AppName::new(kebab(name)).unwrap()).unwrap_or_else(|error| panic!("{error}"))
}

fn convert_text(text: &str) -> Result<Converted, SamError> {
    let dir = fixture("api-hello-node");
    convert(text, "template.yaml", &dir, &AppName::new("t").unwrap())
}

#[test]
fn public_sample_templates_become_these_manifests() {
    let mut all = String::new();
    for name in [
        "api-hello-node",
        "sqs-lambda-node",
        "sns-lambda-python",
        "schedule-lambda-python",
        "sfn-chain-of-responsibility",
        "sfn-common-error-handling",
    ] {
        let converted = convert_fixture(name);
        all.push_str(&format!("==> {name}\n{}\n", converted.manifest));
    }
    expect_test::expect_file!["../../tests/sam/manifests.snap"].assert_eq(&all);
}

#[test]
fn every_property_and_event_maps_to_its_setting() {
    let converted = convert_text(
        r#"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String, Default: prod}
Globals:
  Function:
    Runtime: python3.12
    Timeout: 10
    Environment: {Variables: {STAGE: !Ref Stage}}
Resources:
  Orders:
    Type: AWS::SNS::Topic
  Failed:
    Type: AWS::SNS::Topic
    Properties: {TopicName: orders.failed}
  Jobs:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 60
      RedrivePolicy: {deadLetterTargetArn: !GetAtt JobsDlq.Arn, maxReceiveCount: 3}
  JobsDlq:
    Type: AWS::SQS::Queue
  ApiFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: hello_world/
      Handler: app.handler
      MemorySize: 256
      ReservedConcurrentExecutions: 5
      ProvisionedConcurrencyConfig: {ProvisionedConcurrentExecutions: 1}
      AutoPublishAlias: live
      DeploymentPreference: {Type: Canary10Percent10Minutes, Alarms: [!Ref SomeAlarm]}
      DeadLetterQueue: {Type: SNS, TargetArn: !Ref Failed}
      EventInvokeConfig:
        MaximumEventAgeInSeconds: 600
        MaximumRetryAttempts: 1
        DestinationConfig:
          OnSuccess: {Type: Lambda, Destination: !GetAtt Worker.Arn}
          OnFailure: {Type: SNS, Destination: !Ref Failed}
      Environment: {Variables: {TOPIC: !Ref Orders, QUEUE: !GetAtt Jobs.QueueName}}
      Policies: [AWSLambdaBasicExecutionRole]
      Events:
        Get: {Type: Api, Properties: {Path: '/orders/{id}', Method: get}}
        Files: {Type: HttpApi, Properties: {Path: '/files/{proxy+}', Method: ANY}}
        Placed: {Type: SNS, Properties: {Topic: !Ref Orders}}
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: hello_world
      Handler: app.handler
      RecursiveLoop: Allow
      Events:
        Work: {Type: SQS, Properties: {Queue: !GetAtt Jobs.Arn, BatchSize: 5, MaximumBatchingWindowInSeconds: 2}}
        Nightly: {Type: ScheduleV2, Properties: {ScheduleExpression: 'cron(0 3 ? * MON-FRI *)', ScheduleExpressionTimezone: Europe/Paris}}
        Off: {Type: Schedule, Properties: {Schedule: rate(1 hour), Enabled: false}}
        Shipped: {Type: EventBridgeRule, Properties: {Pattern: {source: [shop.shipping]}}}
  SomeAlarm:
    Type: AWS::CloudWatch::Alarm
"#,
    );
    let converted = converted.unwrap_or_else(|error| panic!("{error}"));
    let manifest = Manifest::parse(&converted.manifest, "t", &Limits::default()).unwrap();
    assert_eq!(converted.canary, Some((10.0, "10m".to_owned())));
    let api = &manifest.functions[&FunctionName::new("api-function").unwrap()];
    let text = &converted.manifest;
    for expected in [
        "memory = \"256MiB\"",
        "timeout = \"10s\"",
        "concurrency = 5",
        "min_instances = 1",
        "live = \"$LATEST\"",
        "dead_letter_topic = \"orders.failed\"",
        "max_event_age = \"600s\"",
        "retries = 1",
        "function = \"worker\"",
        "topic = \"orders.failed\"",
        "STAGE = \"prod\"",
        "TOPIC = \"arn:aws:sns:us-east-1:000000000000:orders\"",
        "QUEUE = \"jobs\"",
        "http = \"GET /orders/{id}\"",
        "payload_format = \"1.0\"",
        "http = \"* /files/{*proxy}\"",
        "topic = \"orders\"",
        "queue = \"jobs\"",
        "batch_size = 5",
        "batch_window = \"2s\"",
        "visibility_timeout = \"60s\"",
        "dead_letter_queue = \"jobs-dlq\"",
        "max_receives = 3",
        "schedule = \"0 3 * * MON-FRI\"",
        "timezone = \"Europe/Paris\"",
        "topic = \"shop.shipping\"",
        "recursive_loop = \"allow\"",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
    }
    // The event sources of a function with AutoPublishAlias run the alias.
    assert_eq!(api.config.triggers.len(), 3);
    assert!(text.matches("alias = \"live\"").count() == 3, "{text}");
    assert!(!text.contains("rate(1 hour)"), "a disabled schedule is left out");
    assert!(converted.notes.iter().any(|note| note.contains("Policies")), "{:?}", converted.notes);
    assert!(converted.notes.iter().any(|note| note.contains("Alarms")), "{:?}", converted.notes);
}

#[test]
fn what_cannot_be_mapped_is_named_with_what_to_do() {
    let error = convert_text(
        r#"
Transform: AWS::Serverless-2016-10-31
Conditions: {IsProd: !Equals [a, b]}
Resources:
  Table:
    Type: AWS::DynamoDB::Table
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: nowhere/
      Handler: app.handler
      Runtime: java21
      Layers: [!Ref Shared]
      Environment: {Variables: {TABLE: !GetAtt FnRole.Arn}}
      DeploymentPreference: {Type: Linear10PercentEvery1Minute}
      Events:
        Upload: {Type: S3, Properties: {Bucket: b}}
        Filtered: {Type: SNS, Properties: {Topic: t, FilterPolicy: {kind: [a]}}}
        Detailed: {Type: EventBridgeRule, Properties: {Pattern: {source: [a], detail-type: [b]}}}
"#,
    )
    .unwrap_err();
    let text = error.to_string();
    for expected in [
        "template.yaml: Conditions: is not supported",
        "Resources.Table.Type: AWS::DynamoDB::Table cannot be mapped",
        "Resources.Fn.Properties.CodeUri: \"nowhere\" does not exist beside the template",
        "Resources.Fn.Properties.Runtime: \"java21\" cannot be mapped",
        "Resources.Fn.Properties.Layers: Ref Shared: the template has no resource or parameter",
        "Resources.Fn.Properties.Environment: Fn::GetAtt FnRole.Arn: the template has no resource \"FnRole\"",
        "Resources.Fn.Properties.DeploymentPreference.Type: Linear10PercentEvery1Minute cannot be mapped",
        "Resources.Fn.Properties.Events.Upload.Type: S3 events cannot be mapped",
        "Resources.Fn.Properties.Events.Filtered.Properties.FilterPolicy: cannot be mapped for a SNS event",
        "Resources.Fn.Properties.Events.Detailed.Properties.Pattern: only `source` can be mapped",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
    }
    let twins = convert_text(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  HelloWorld:\n    Type: AWS::SNS::Topic\n  \
         Other:\n    Type: AWS::SNS::Topic\n    Properties: {TopicName: hello-world}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(twins.contains("Resources.Other: would be named \"hello-world\", as HelloWorld is"), "{twins}");
    let looped = convert_text(
        "Transform: AWS::Serverless-2016-10-31\nParameters:\n  A: {Type: String, Default: !Ref A}\nResources:\n  \
         T:\n    Type: AWS::SNS::Topic\n    Properties: {TopicName: !Ref A}\n",
    );
    assert!(looped.is_err());
    let not_sam = convert_text("Resources: {}").unwrap_err().to_string();
    assert!(not_sam.contains("Transform: AWS::Serverless-2016-10-31"), "{not_sam}");
    let broken = convert_text("Resources: [").unwrap_err().to_string();
    assert!(broken.contains("not valid YAML"), "{broken}");
    // A state machine that uses what workflows refuse fails in the manifest check, named.
    let refused = convert_text(
        r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  Flow:
    Type: AWS::Serverless::StateMachine
    Properties:
      Definition:
        StartAt: Put
        States:
          Put: {Type: Task, Resource: 'arn:aws:states:::dynamodb:putItem', End: true}
"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        refused.contains("arn:aws:states:::dynamodb:putItem\\\" is a Step Functions service integration")
            || refused.contains("\"arn:aws:states:::dynamodb:putItem\" is a Step Functions service integration"),
        "{refused}"
    );
}

#[test]
fn logical_ids_become_names() {
    assert_eq!(kebab("HelloWorldFunction"), "hello-world-function");
    assert_eq!(kebab("HTTPApiHandler"), "http-api-handler");
    assert_eq!(kebab("Dispense50Function"), "dispense50-function");
    assert_eq!(kebab("my_func"), "my_func");
    assert_eq!(kebab("9Lives"), "f-9-lives");
}
