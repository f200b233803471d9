//! One registry request with its retries: every attempt is built afresh (a blob upload
//! re-opens its file), a non-2xx answer becomes [`Error::Status`] with the distribution error
//! code and `Retry-After`, and transient failures wait and try again (see [`super::retry`]).
//! A small body (manifest, config) is read inside the attempt, so a connection that breaks
//! while it arrives is retried too.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};

use backon::Retryable as _;
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, Response, StatusCode};

use super::retry::{backoff, parse_retry_after, RetryLog};
use super::{Error, Registry};

/// How much of an error body we read for its message.
const MAX_ERROR_BODY: usize = 16 * 1024;
/// The largest manifest or config we read (ECR's manifest limit is 4 MiB).
pub(super) const MAX_DOCUMENT: usize = 8 * 1024 * 1024;

/// A small document read whole, with the answer's headers.
pub(super) struct Fetched {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Registry {
    /// Runs `attempt` until it succeeds, fails for good, or runs out of attempts; each retry is
    /// one line in `log`, and the final error says how many attempts were made.
    pub(super) async fn retrying<T, F, Fut>(
        &self,
        operation: &str,
        log: RetryLog<'_>,
        attempt: F,
    ) -> Result<T, Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let attempts = AtomicU32::new(0);
        let once = || {
            attempts.fetch_add(1, Ordering::Relaxed);
            attempt()
        };
        once.retry(backoff())
            .when(Error::is_transient)
            .adjust(|error, wait| wait.map(|wait| error.retry_after().unwrap_or(wait)))
            .notify(|error, wait| {
                log.retry(operation, attempts.load(Ordering::Relaxed), error, wait);
            })
            .await
            .map_err(|error| error.with_attempts(attempts.load(Ordering::Relaxed)))
    }

    /// Sends one request with the credentials; a 2xx answer (or a 404 when `missing_ok`) is
    /// returned, anything else is an [`Error`].
    pub(super) async fn send_once(
        &self,
        operation: &str,
        request: RequestBuilder,
        missing_ok: bool,
    ) -> Result<Response, Error> {
        let response = request
            .basic_auth(&self.username, Some(self.password.expose()))
            .send()
            .await
            .map_err(|source| self.transport(operation, source))?;
        let status = response.status();
        if status.is_success() || (missing_ok && status == StatusCode::NOT_FOUND) {
            return Ok(response);
        }
        Err(self.status_error(operation, response).await)
    }

    /// A request with an empty or small answer, retried; `None` for a 404 when `missing_ok`.
    pub(super) async fn send<F>(
        &self,
        operation: &str,
        log: RetryLog<'_>,
        missing_ok: bool,
        request: F,
    ) -> Result<Option<Response>, Error>
    where
        F: Fn() -> RequestBuilder,
    {
        self.retrying(operation, log, || async {
            let response = self.send_once(operation, request(), missing_ok).await?;
            Ok((response.status() != StatusCode::NOT_FOUND).then_some(response))
        })
        .await
    }

    /// A small document (manifest, config) read whole, retried; `None` for a 404.
    pub(super) async fn fetch<F>(
        &self,
        operation: &str,
        log: RetryLog<'_>,
        request: F,
    ) -> Result<Option<Fetched>, Error>
    where
        F: Fn() -> RequestBuilder,
    {
        self.retrying(operation, log, || async {
            let response = self.send_once(operation, request(), true).await?;
            if response.status() == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            let headers = response.headers().clone();
            let body = self.read_body(operation, response).await?;
            Ok(Some(Fetched { headers, body }))
        })
        .await
    }

    pub(super) fn transport(&self, operation: &str, source: reqwest::Error) -> Error {
        Error::Transport {
            operation: operation.to_owned(),
            registry: self.host.clone(),
            attempts: 1,
            source,
        }
    }

    /// A whole small body, failing on a transport error or one over [`MAX_DOCUMENT`].
    async fn read_body(&self, operation: &str, mut response: Response) -> Result<Vec<u8>, Error> {
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|source| self.transport(operation, source))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT {
                return Err(Error::Malformed {
                    what: format!("the answer to {operation}"),
                    reason: format!("it is larger than {MAX_DOCUMENT} bytes"),
                });
            }
        }
        Ok(body)
    }

    /// The error for a non-2xx answer: status, the first distribution error's code and
    /// message, and `Retry-After`.
    async fn status_error(&self, operation: &str, mut response: Response) -> Error {
        #[derive(serde::Deserialize)]
        struct Envelope {
            errors: Vec<Detail>,
        }
        #[derive(serde::Deserialize)]
        struct Detail {
            code: String,
            #[serde(default)]
            message: String,
        }
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() >= MAX_ERROR_BODY {
                break;
            }
        }
        let (code, message) = match serde_json::from_slice::<Envelope>(&body) {
            Ok(envelope) if !envelope.errors.is_empty() => {
                let first = &envelope.errors[0];
                (Some(first.code.clone()), first.message.clone())
            }
            _ => (
                None,
                String::from_utf8_lossy(&body)
                    .trim()
                    .chars()
                    .take(300)
                    .collect(),
            ),
        };
        Error::Status {
            operation: operation.to_owned(),
            registry: self.host.clone(),
            status,
            code,
            message,
            retry_after,
            attempts: 1,
        }
    }
}
