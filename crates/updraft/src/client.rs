//! The CLI's HTTP client for the control plane: finds the API key, turns error
//! answers into messages that say what to do.

use anyhow::{Context, anyhow};
use serde::de::DeserializeOwned;
use updraft_api::views::ErrorBody;

use crate::cli::Global;

pub struct Client {
    http: reqwest::Client,
    endpoint: String,
    token: String,
}

impl Client {
    pub fn new(global: &Global) -> anyhow::Result<Self> {
        let token = match &global.token {
            Some(token) => token.clone(),
            None => {
                let path = global.data_dir().join("admin-token");
                std::fs::read_to_string(&path)
                    .map(|t| t.trim().to_owned())
                    .with_context(|| {
                        format!(
                            "no API key: set UPDRAFT_TOKEN, or start a local server (`updraft server` or `updraft up`), which writes {}",
                            path.display()
                        )
                    })?
            }
        };
        Self::with_token(&global.endpoint, token)
    }

    pub fn with_token(endpoint: &str, token: String) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().build().context("creating the HTTP client")?;
        Ok(Self { http, endpoint: endpoint.trim_end_matches('/').to_owned(), token })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.endpoint)).bearer_auth(&self.token)
    }

    /// Sends and returns the response if its status is a success, else the server's
    /// error message as an error.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let response = request.send().await.map_err(|error| {
            if error.is_connect() {
                anyhow!(
                    "cannot reach the Updraft server at {}; start one with `updraft server` or set --endpoint / UPDRAFT_ENDPOINT",
                    self.endpoint
                )
            } else {
                anyhow!(error).context(format!("request to {} failed", self.endpoint))
            }
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(error_from(response).await)
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.call(reqwest::Method::GET, path, |request| request).await
    }

    /// A GET with query parameters, encoded.
    pub async fn get_query<T: DeserializeOwned>(&self, path: &str, query: Vec<(&str, String)>) -> anyhow::Result<T> {
        self.call(reqwest::Method::GET, path, |request| request.query(&query)).await
    }

    /// A POST without a body, with query parameters.
    pub async fn post_query<T: DeserializeOwned>(&self, path: &str, query: Vec<(&str, String)>) -> anyhow::Result<T> {
        self.call(reqwest::Method::POST, path, |request| request.query(&query)).await
    }

    pub async fn post_json<B: serde::Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<T> {
        self.call(reqwest::Method::POST, path, |request| request.json(body)).await
    }

    /// A POST without a body.
    pub async fn post<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.call(reqwest::Method::POST, path, |request| request).await
    }

    /// A PUT whose body is `text`.
    pub async fn put_text<T: DeserializeOwned>(&self, path: &str, text: String) -> anyhow::Result<T> {
        self.call(reqwest::Method::PUT, path, |request| request.body(text)).await
    }

    /// Sends `method path` (with what `build` adds) and reads the JSON answer.
    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let what = format!("{method} {path}");
        let response = self.send(build(self.request(method, path))).await?;
        response.json().await.with_context(|| format!("reading the answer to {what}"))
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<()> {
        self.send(self.request(reqwest::Method::DELETE, path)).await?;
        Ok(())
    }
}

/// The error an unsuccessful answer stands for.
pub async fn error_from(response: reqwest::Response) -> anyhow::Error {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => {
            let mut message = body.error.message;
            // Manifest problems are already in the message, one per line.
            if !body.error.problems.is_empty() && !message.contains('\n') {
                for problem in body.error.problems {
                    message.push_str(&format!("\n  {}: {}", problem.field, problem.message));
                }
            }
            anyhow!("{message} ({status}, {})", body.error.code)
        }
        Err(_) if text.is_empty() => anyhow!("the server answered {status}"),
        Err(_) => anyhow!("the server answered {status}: {text}"),
    }
}
