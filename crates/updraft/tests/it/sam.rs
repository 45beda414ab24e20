//! SAM templates deployed as they are: AWS's public samples (in `tests/sam`, with
//! their licence) deployed with `updraft deploy` and `updraft import`, each answering
//! as it does on AWS; and a template of our own for what the samples do not use (the
//! canary of a DeploymentPreference, a state machine with a Map, `lambda:invoke`,
//! ResultSelector and intrinsic functions).

use std::path::Path;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::events::finished;
use crate::harness::{TestServer, copy_dir, repo_root};

/// A copy of the sample `name`, so that its build stays out of the repository.
fn sample(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("crates/updraft/tests/sam").join(name), dir.path());
    dir
}

async fn start_execution(server: &TestServer, workflow: &str, input: Value) -> Value {
    let response =
        server.api(Method::POST, &format!("/v1/workflows/{workflow}/executions")).json(&input).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED, "{}", response.text().await.unwrap());
    let started: Value = response.json().await.unwrap();
    finished(server, started["execution_id"].as_str().unwrap()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_sample_templates_deploy_unchanged_and_answer() {
    let _load = crate::harness::HEAVY_LOAD.read().await;
    let server = TestServer::start();

    // API Gateway + Node.js (ESM), deployed from the folder with its template.
    let api = sample("api-hello-node");
    server.deploy(api.path());
    let hello = server.get("/hello").await;
    assert_eq!(hello.status(), StatusCode::OK);
    assert_eq!(hello.json::<Value>().await.unwrap(), json!({"message": "hello world"}));

    // SQS + Node.js: a message sent to the template's queue reaches its consumer.
    let sqs = sample("sqs-lambda-node");
    server.deploy(&sqs.path().join("template.yaml"));
    let sent = server.api(Method::POST, "/v1/queues/my-sqs-queue").body("order 1182").send().await.unwrap();
    assert!(sent.status().is_success(), "{}", sent.text().await.unwrap());
    server.wait_for_function_log("queue-consumer-function", "order 1182").await;

    // SNS + Python, through `updraft import`: the manifest it writes is what deploys.
    let sns = sample("sns-lambda-python");
    let imported = server.cli_in(sns.path(), &["import"]);
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    let manifest = std::fs::read_to_string(sns.path().join("updraft.toml")).unwrap();
    assert!(manifest.contains("topic = \"processing-topic\""), "{manifest}");
    let again = server.cli_in(sns.path(), &["import"]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("--force"));
    server.deploy(sns.path());
    let published = server.api(Method::POST, "/v1/topics/processing-topic").body("parcel 7").send().await.unwrap();
    assert!(published.status().is_success(), "{}", published.text().await.unwrap());
    server.wait_for_function_log("processor-function", "Processed message parcel 7").await;

    // EventBridge schedule + Python: the rule is the function's schedule trigger; the
    // function answers as it does on AWS.
    let schedule = sample("schedule-lambda-python");
    server.deploy(schedule.path());
    let described = server.cli_ok(&["describe", "scheduled-function"]);
    assert!(described.contains("rate(1 minute)"), "{described}");
    assert_eq!(server.invoke("scheduled-function", json!({})).await, json!(true));

    // Step Functions, direct Lambda ARNs substituted into a DefinitionUri file.
    let chain = sample("sfn-chain-of-responsibility");
    server.deploy(chain.path());
    let execution = start_execution(&server, "chained-state-machine", json!({"dispense": "185"})).await;
    assert_eq!(execution["status"], "succeeded", "{execution:#}");
    let output = output_of(&execution);
    assert_eq!(output, json!({"dispense": "0", "50s": "3", "20s": "1", "10s": "1", "1s": "5"}));

    // Step Functions, the optimized `lambda:invoke` integration with Catch into a
    // common error handler.
    let errors = sample("sfn-common-error-handling");
    server.deploy(errors.path());
    for (number, failed, handler) in [(3, "evenLambdaFailure", "evenLambda"), (4, "oddLambdaFailure", "oddLambda")] {
        let execution = start_execution(&server, "common-error-option1-state-machine", json!({"Number": number})).await;
        assert_eq!(execution["status"], "succeeded", "{execution:#}");
        let output = output_of(&execution);
        assert_eq!(output["numberLambda"]["Payload"], json!(number), "{output:#}");
        assert_eq!(output["numberLambda"]["StatusCode"], 200, "{output:#}");
        assert_eq!(output[failed]["Error"], "Exception", "{output:#}");
        assert_eq!(output["commonErrorLambda"]["Payload"], handler, "{output:#}");
    }
    let execution = start_execution(&server, "common-error-option1-state-machine", json!({"Number": "x"})).await;
    let output = output_of(&execution);
    assert_eq!(output["numberLambdaFailure"]["Error"], "ValueError", "{output:#}");
}

const SHOP_TEMPLATE: &str = r#"
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.12
    Handler: app.handler
    Timeout: 10
Resources:
  PriceFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: price/
      AutoPublishAlias: live
      DeploymentPreference:
        Type: Canary10Percent5Minutes
      Events:
        Quote:
          Type: HttpApi
          Properties:
            Path: /price/{sku}
            Method: get
        RestQuote:
          Type: Api
          Properties:
            Path: /rest/price/{sku}
            Method: get
  TotalFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: total/
  Checkout:
    Type: AWS::Serverless::StateMachine
    Properties:
      Definition:
        StartAt: PriceEach
        States:
          PriceEach:
            Type: Map
            ItemsPath: $.items
            MaxConcurrency: 2
            ItemSelector:
              sku.$: $$.Map.Item.Value
              position.$: $$.Map.Item.Index
            ItemProcessor:
              ProcessorConfig: {Mode: INLINE}
              StartAt: Price
              States:
                Price:
                  Type: Task
                  Resource: arn:aws:states:::lambda:invoke
                  Parameters:
                    FunctionName: ${PriceArn}
                    Payload.$: $
                  OutputPath: $.Payload
                  End: true
            ResultPath: $.prices
            Next: Total
          Total:
            Type: Task
            Resource: arn:aws:states:::lambda:invoke
            Parameters:
              FunctionName: !GetAtt TotalFunction.Arn
              Payload:
                prices.$: $.prices
            ResultSelector:
              total.$: $.Payload.total
            ResultPath: $.summary
            Next: Describe
          Describe:
            Type: Pass
            Parameters:
              text.$: States.Format('{} items for {}', States.ArrayLength($.prices), $.summary.total)
              id.$: States.UUID()
            End: true
      DefinitionSubstitutions:
        PriceArn: !GetAtt PriceFunction.Arn
"#;

const PRICE: &str = r#"
import json

def handler(event, context):
    if "httpMethod" in event:  # through the REST API route: payload format 1.0
        sku = event["pathParameters"]["sku"]
        body = {"sku": sku, "price": len(sku) * VERSION, "method": event["httpMethod"], "path": event["path"]}
        return {"statusCode": 200, "multiValueHeaders": {"x-resource": [event["resource"]]}, "body": json.dumps(body)}
    if "rawPath" in event:  # through the HTTP API route: payload format 2.0
        sku = event["pathParameters"]["sku"]
        return {"statusCode": 200, "body": json.dumps({"sku": sku, "price": len(sku) * VERSION})}
    return {"sku": event["sku"], "position": event["position"], "price": len(event["sku"]) * VERSION}

VERSION = 10
"#;

const TOTAL: &str = r#"
def handler(event, context):
    return {"total": sum(item["price"] for item in event["prices"])}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_template_of_our_own_runs_its_state_machine_and_deploys_as_a_canary() {
    let _load = crate::harness::HEAVY_LOAD.read().await;
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("template.yaml", SHOP_TEMPLATE);
    write("price/app.py", PRICE);
    write("total/app.py", TOTAL);
    server.deploy(dir.path());

    // The state machine: a Map over lambda:invoke tasks, ResultSelector, intrinsics.
    let execution = start_execution(&server, "checkout", json!({"items": ["ab", "abcd", "a"]})).await;
    assert_eq!(execution["status"], "succeeded", "{execution:#}");
    let output = output_of(&execution);
    assert_eq!(output["text"], "3 items for 70", "{output:#}");
    assert!(uuid_like(output["id"].as_str().unwrap()), "{output:#}");
    let history = execution["history"].to_string();
    assert!(history.contains(r#""position":2"#), "each item ran with its index: {history}");

    // The route serves the AutoPublishAlias; a new version deploys as the template's
    // DeploymentPreference says, a 10% canary for 5 minutes.
    let quote = server.get("/price/abc").await.json::<Value>().await.unwrap();
    assert_eq!(quote["price"], 30);
    // The Api event is a REST API's: payload format 1.0 in, its response rules out.
    let rest = server.get("/rest/price/abc").await;
    assert_eq!(rest.headers()["x-resource"], "/rest/price/{sku}");
    let rest = rest.json::<Value>().await.unwrap();
    assert_eq!(
        (&rest["method"], &rest["path"], &rest["price"]),
        (&json!("GET"), &json!("/rest/price/abc"), &json!(30))
    );
    write("price/app.py", &PRICE.replace("VERSION = 10", "VERSION = 100"));
    let deployed = server.deploy(dir.path());
    assert!(deployed.contains("canary: 10% for 5m"), "{deployed}");
    let described = server.cli_ok(&["describe", "price-function"]);
    assert!(described.contains("live"), "{described}");
    assert!(
        described.contains("/rest/price/{sku}  (served by alias live)  (REST API events, payload 1.0)"),
        "{described}"
    );
    // Both versions answer while the canary runs: 10% of requests reach the new one.
    let mut prices = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while prices.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "only {prices:?} answered");
        let quote = server.get("/price/abc").await.json::<Value>().await.unwrap();
        prices.insert(quote["price"].as_i64().unwrap());
    }
    assert_eq!(prices, [30, 300].into());
    server.cli_ok(&["promote", "price-function"]);
    for _ in 0..20 {
        assert_eq!(server.get("/price/abc").await.json::<Value>().await.unwrap()["price"], 300);
    }
}

fn uuid_like(text: &str) -> bool {
    text.len() == 36 && text.chars().filter(|c| *c == '-').count() == 4
}

#[test]
fn a_template_that_cannot_be_mapped_is_refused_before_anything_is_built() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("template.yaml"),
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Table:\n    Type: AWS::DynamoDB::Table\n",
    )
    .unwrap();
    let server = TestServer::start();
    let output = server.cli(&["deploy", dir.path().to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Resources.Table.Type: AWS::DynamoDB::Table cannot be mapped"), "{stderr}");
    assert!(!Path::new(&dir.path().join(".updraft")).exists(), "nothing was built");
}

/// A finished execution's output.
fn output_of(execution: &Value) -> Value {
    assert!(!execution["output"].is_null(), "no output in {execution:#}");
    execution["output"].clone()
}
