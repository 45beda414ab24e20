//! `updraft events sample KIND`: the event a Lambda handler receives from a trigger, made
//! by the code that delivers it (as SAM's `local generate-event` prints AWS's), to edit
//! and pass to `updraft invoke NAME --event FILE`.

use bytes::Bytes;
use updraft_model::{EventSource, QueueName, TopicName};
use updraft_runtime::{Body, Event, EventOrigin, Input};

/// The triggers whose events can be sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SampleKind {
    /// A topic's message: SNS's notification record.
    #[value(alias = "topic")]
    Sns,
    /// A work queue's batch: SQS's batch event.
    #[value(alias = "queue")]
    Sqs,
    /// A schedule's tick: EventBridge's scheduled event.
    Schedule,
    /// A request on an `http` route (or a webhook): API Gateway's HTTP API event.
    #[value(alias = "apigw")]
    Http,
}

/// What a sample is made of: the receiving function, the trigger's source (a topic, a
/// queue, a schedule or `METHOD /path`) and the message or request body.
pub struct Sample<'a> {
    pub function: &'a str,
    pub source: Option<&'a str>,
    pub body: Bytes,
}

/// The event, pretty-printed JSON.
pub fn sample(kind: SampleKind, sample: Sample<'_>) -> anyhow::Result<String> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let id = "8f5e5b5a-3c3e-4b5e-9d0a-2f1c4d6e7a8b".to_owned();
    let stored = |source| {
        Input::Event(Event {
            id: id.clone(),
            payload: sample.body.clone(),
            origin: EventOrigin::Stored { source, enqueued_at: now },
        })
    };
    let input = match kind {
        SampleKind::Sns => stored(EventSource::Topic {
            topic: TopicName::new(sample.source.unwrap_or("my-topic")).map_err(anyhow::Error::msg)?,
            message_id: id.clone(),
            content_type: Some("application/json".into()),
            subject: None,
            published_at: now,
            attributes: Vec::new(),
        }),
        SampleKind::Schedule => stored(EventSource::Schedule {
            schedule: sample.source.unwrap_or("rate(5 minutes)").to_owned(),
            tick_at: now,
        }),
        SampleKind::Sqs => {
            let queue = QueueName::new(sample.source.unwrap_or("my-queue")).map_err(anyhow::Error::msg)?;
            let message = updraft_store::QueueMessage {
                id: id.clone(),
                queue: queue.clone(),
                body: sample.body.to_vec(),
                content_type: None,
                sent_at: now,
                receive_count: 1,
                first_received_at: Some(now),
                visible_at: now,
                trace: None,
            };
            let payload = updraft_events::sqs_batch(&queue, &[message]);
            Input::Event(Event { id: id.clone(), payload, origin: EventOrigin::QueueBatch { queue } })
        }
        SampleKind::Http => {
            let line = sample.source.unwrap_or("GET /");
            let (method, target) = request_line(line)?;
            let path = target.split('?').next().unwrap_or("/").to_owned();
            let mut request = http::Request::builder()
                .method(method)
                .uri(target)
                .header("host", "127.0.0.1:7070")
                .header("x-updraft-route", path);
            if !sample.body.is_empty() {
                request = request.header("content-type", "application/json");
            }
            Input::Http(request.body(Body::whole(sample.body.clone()))?)
        }
    };
    let event = updraft_runtime_process::lambda_event(input, sample.function, "us-east-1", "000000000000", now);
    let document: serde_json::Value = serde_json::from_slice(&event)?;
    Ok(serde_json::to_string_pretty(&document)?)
}

/// `METHOD /path?query`, as `--http` and `--source` take it.
pub fn request_line(line: &str) -> anyhow::Result<(http::Method, String)> {
    let (method, target) = line
        .trim()
        .split_once(' ')
        .ok_or_else(|| anyhow::anyhow!("{line:?} is not a request; write it like 'GET /items/7'"))?;
    let method = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| anyhow::anyhow!("{method:?} is not an HTTP method; write it like 'GET /items/7'"))?;
    let target = target.trim();
    anyhow::ensure!(target.starts_with('/'), "{target:?} is not a path; write it like 'GET /items/7'");
    Ok((method, target.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(kind: SampleKind, source: Option<&str>, body: &'static str) -> serde_json::Value {
        let text = sample(kind, Sample { function: "worker", source, body: Bytes::from_static(body.as_bytes()) });
        serde_json::from_str(&text.unwrap()).unwrap()
    }

    #[test]
    fn samples_are_the_events_lambda_handlers_get() {
        let sns = json(SampleKind::Sns, Some("orders"), r#"{"id":1}"#);
        assert_eq!(sns["Records"][0]["EventSource"], "aws:sns");
        assert_eq!(sns["Records"][0]["Sns"]["TopicArn"], "arn:aws:sns:us-east-1:000000000000:orders");
        assert_eq!(sns["Records"][0]["Sns"]["Message"], r#"{"id":1}"#);

        let sqs = json(SampleKind::Sqs, None, "hello");
        assert_eq!(sqs["Records"][0]["eventSource"], "aws:sqs");
        assert_eq!(sqs["Records"][0]["eventSourceARN"], "arn:aws:sqs:us-east-1:000000000000:my-queue");
        assert_eq!(sqs["Records"][0]["body"], "hello");

        let tick = json(SampleKind::Schedule, None, "");
        assert_eq!(tick["detail-type"], "Scheduled Event");
        assert_eq!(tick["resources"][0], "arn:aws:events:us-east-1:000000000000:rule/worker-schedule");

        let http = json(SampleKind::Http, Some("post /items?x=1"), r#"{"a":1}"#);
        assert_eq!(http["routeKey"], "POST /items");
        assert_eq!(http["rawQueryString"], "x=1");
        assert_eq!(http["requestContext"]["http"]["method"], "POST");
        assert_eq!(http["body"], r#"{"a":1}"#);
    }

    #[test]
    fn request_lines_say_what_is_wrong() {
        assert_eq!(request_line("get /a?b=1").unwrap(), (http::Method::GET, "/a?b=1".to_owned()));
        assert!(request_line("/a").unwrap_err().to_string().contains("is not a request"));
        assert!(request_line("GET a").unwrap_err().to_string().contains("is not a path"));
        assert!(request_line("G(T /a").unwrap_err().to_string().contains("is not an HTTP method"));
    }
}
