//! The API's one error type and its RFC 9457 problem documents.
//!
//! Every module's error maps here, in one place, to an HTTP status and a stable `code` that
//! clients can switch on. 5xx errors are logged with their cause; 4xx are the client's business
//! and are not logged as errors.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field, as a JSON pointer-ish path (`door`, `items[0].qty`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// What a problem is about, when the request already changed something: its kind, id and state
/// now (a rental left `pending` or `ending` while the locker is asked what happened).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Subject {
    /// `rental` or `order`.
    pub kind: &'static str,
    /// Its id.
    pub id: uuid::Uuid,
    /// Its state now (`pending`, `ending`, `active`, `paid`).
    pub state: &'static str,
}

/// An RFC 9457 problem document (`application/problem+json`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, stable per `code`: `/problems/{code}` on the gateway,
    /// which explains it.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// A stable, machine-readable code (`not_found`, `validation_failed`, ...).
    pub code: String,
    /// For `validation_failed`: each invalid field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For `outcome_unknown`: what the request left waiting for the locker's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request could not be read (malformed JSON, a bad query string, a bad header).
    #[error("{0}")]
    BadRequest(String),
    /// The body is well-formed but some fields are wrong.
    #[error("some fields are invalid")]
    Validation(Vec<FieldError>),
    /// An amount is not written by the grammar or is beyond the configured bounds.
    #[error("an amount is invalid")]
    InvalidAmount(Vec<FieldError>),
    /// No valid credentials.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Not enough money (a wallet's available balance); a stable code says which check.
    #[error("{detail}")]
    PaymentRequired {
        /// Stable code.
        code: &'static str,
        /// What is missing.
        detail: String,
    },
    /// Not allowed for this user.
    #[error("your account's role does not allow this")]
    Forbidden,
    /// A console request (authenticated by its session cookie) without its CSRF token.
    #[error("this request needs the console's CSRF token")]
    CsrfFailed,
    /// No such thing, or not yours.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// No such route.
    #[error("no such route")]
    NoRoute,
    /// The route exists but not with this method.
    #[error("this route does not take this method")]
    MethodNotAllowed,
    /// The state does not allow it now (a stable code says which conflict).
    #[error("{detail}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// What conflicts.
        detail: String,
    },
    /// The body did not arrive in time (`LOCKER_HTTP_BODY_TIMEOUT_SECS`).
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// The body is larger than allowed.
    #[error("the request body is larger than this gateway accepts (LOCKER_HTTP_BODY_LIMIT)")]
    PayloadTooLarge,
    /// The body is not JSON (`Content-Type`).
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    /// Understood but refused on business grounds (a stable code says why).
    #[error("{detail}")]
    Unprocessable {
        /// Stable code.
        code: &'static str,
        /// Why.
        detail: String,
    },
    /// Too many requests; try again after this many seconds.
    #[error("too many requests; retry after {retry_after_secs} s")]
    TooManyRequests {
        /// Seconds until a request will be accepted.
        retry_after_secs: u64,
    },
    /// A dependency is down or the gateway is stopping.
    #[error("{0}")]
    Unavailable(String),
    /// A locker cannot be reached now (a stable code says why).
    #[error("{detail}")]
    DeviceUnavailable {
        /// Stable code.
        code: &'static str,
        /// What happened.
        detail: String,
    },
    /// A locker did not answer in time.
    #[error("{0}")]
    GatewayTimeout(String),
    /// A locker did not answer in time and whether the door opened is not known yet: the locker
    /// is being asked. Not "did not open".
    #[error("{detail}")]
    OutcomeUnknown {
        /// What happened and what happens next.
        detail: String,
        /// What waits for the answer.
        subject: Option<Subject>,
    },
    /// A bug or an unexpected failure: logged with its cause, shown without it.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Validation(_) | Self::InvalidAmount(_) | Self::Unprocessable { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::PaymentRequired { .. } => StatusCode::PAYMENT_REQUIRED,
            Self::Forbidden | Self::CsrfFailed => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::NoRoute => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::DeviceUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::GatewayTimeout(_) | Self::OutcomeUnknown { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Validation(_) => "validation_failed",
            Self::InvalidAmount(_) => "invalid_amount",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::CsrfFailed => "csrf_failed",
            Self::NotFound(_) => "not_found",
            Self::NoRoute => "no_such_route",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict { code, .. }
            | Self::Unprocessable { code, .. }
            | Self::PaymentRequired { code, .. }
            | Self::DeviceUnavailable { code, .. } => code,
            Self::PayloadTooLarge => "payload_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::TooManyRequests { .. } => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::GatewayTimeout(_) => "device_timeout",
            Self::OutcomeUnknown { .. } => "outcome_unknown",
            Self::Internal(_) => "internal",
        }
    }

    /// One invalid field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }

    /// A 500 for an unexpected failure, its whole chain of causes kept for the log (never shown
    /// to the client).
    pub fn unexpected(cause: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(inner) = source {
            chain.push_str(": ");
            chain.push_str(&inner.to_string());
            source = inner.source();
        }
        Self::Internal(chain)
    }

    /// Refuses `text` (of `field`) unless it has `min` to `max` characters: the limit the
    /// request's schema states (`minLength`/`maxLength`), as a 422 naming the field.
    pub fn check_length(field: &str, text: &str, min: usize, max: usize) -> Result<(), Self> {
        if (min..=max).contains(&text.chars().count()) {
            Ok(())
        } else {
            Err(Self::field(field, format!("{min} to {max} characters")))
        }
    }

    /// The problem document.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        Problem {
            problem_type: super::problems::type_uri(self.code()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            code: self.code().to_owned(),
            errors: match self {
                Self::Validation(errors) | Self::InvalidAmount(errors) => errors.clone(),
                _ => Vec::new(),
            },
            subject: match self {
                Self::OutcomeUnknown { subject, .. } => subject.clone(),
                _ => None,
            },
        }
    }
}

impl From<crate::account::AccountError> for ApiError {
    fn from(e: crate::account::AccountError) -> Self {
        use crate::account::AccountError as E;
        match e {
            E::EmailTaken => Self::Conflict {
                code: "email_taken",
                detail: e.to_string(),
            },
            E::Invalid { field, message } => Self::field(field, message),
            E::InvalidCredentials => Self::Unauthorized("wrong email or password"),
            E::Hash(cause) => Self::Internal(cause),
            E::Storage(e) => e.into(),
        }
    }
}

impl From<crate::device::RegistryError> for ApiError {
    fn from(e: crate::device::RegistryError) -> Self {
        use crate::device::RegistryError as E;
        match e {
            E::AlreadyExists(_) => Self::Conflict {
                code: "device_exists",
                detail: e.to_string(),
            },
            E::NotFound(_) => Self::NotFound("device"),
            E::Revoked(_) => Self::Conflict {
                code: "device_revoked",
                detail: e.to_string(),
            },
            E::Invalid(message) => Self::Unprocessable {
                code: "invalid_device",
                detail: message.to_owned(),
            },
            E::Database(e) => e.into(),
        }
    }
}

impl From<crate::command::CommandError> for ApiError {
    fn from(e: crate::command::CommandError) -> Self {
        use crate::command::CommandError as E;
        let detail = e.to_string();
        match e {
            E::DeviceOffline => Self::Conflict {
                code: "device_offline",
                detail,
            },
            E::UnknownDevice => Self::NotFound("device"),
            E::Invalid(_) => Self::Unprocessable {
                code: "invalid_command",
                detail,
            },
            E::NoSuchDoor { .. } => Self::Unprocessable {
                code: "no_such_door",
                detail,
            },
            E::Refused(_) => Self::Unprocessable {
                code: "refused_by_device",
                detail,
            },
            E::Timeout { .. } => Self::GatewayTimeout(detail),
            E::Overloaded => Self::Unavailable(detail),
            E::Updating => Self::Conflict {
                code: "updating",
                detail,
            },
            E::Unexpected(cause) => Self::unexpected(&cause),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(format!("database: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        match &self {
            Self::Internal(cause) => tracing::error!(code = problem.code, %cause, "request failed"),
            e if e.status().is_server_error() => {
                tracing::error!(code = problem.code, cause = %e, "request failed")
            }
            e => tracing::debug!(code = problem.code, cause = %e, "request refused"),
        }
        metrics::counter!("locker_http_errors_total", "code" => problem.code.clone()).increment(1);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Self::Unauthorized(_) = self {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Self::TooManyRequests { retry_after_secs } = self
            && let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            headers.insert(header::RETRY_AFTER, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unexpected_failure_keeps_its_cause_to_the_log_and_not_to_the_client() {
        let cause = std::io::Error::other("disk full");
        let error = crate::rental::RentalError::Unexpected(crate::storage::Unexpected::new(cause));
        let source = std::error::Error::source(&error).expect("the cause is its source");
        assert_eq!(source.to_string(), "disk full");
        let api = ApiError::from(error);
        assert!(matches!(&api, ApiError::Internal(chain) if chain.contains("disk full")));
        let problem = api.problem();
        assert_eq!(problem.code, "internal");
        assert!(!problem.detail.contains("disk full"), "{}", problem.detail);
    }

    #[test]
    fn every_error_has_its_status_and_a_problem_document() {
        let cases = [
            (ApiError::BadRequest("x".into()), 400, "bad_request"),
            (ApiError::Unauthorized("x"), 401, "unauthorized"),
            (
                ApiError::PaymentRequired {
                    code: "insufficient_funds",
                    detail: "x".into(),
                },
                402,
                "insufficient_funds",
            ),
            (ApiError::Forbidden, 403, "forbidden"),
            (ApiError::NotFound("device"), 404, "not_found"),
            (ApiError::MethodNotAllowed, 405, "method_not_allowed"),
            (
                ApiError::Conflict {
                    code: "device_offline",
                    detail: "x".into(),
                },
                409,
                "device_offline",
            ),
            (ApiError::PayloadTooLarge, 413, "payload_too_large"),
            (
                ApiError::UnsupportedMediaType,
                415,
                "unsupported_media_type",
            ),
            (ApiError::field("door", "x"), 422, "validation_failed"),
            (
                ApiError::TooManyRequests {
                    retry_after_secs: 3,
                },
                429,
                "rate_limited",
            ),
            (ApiError::Internal("cause".into()), 500, "internal"),
            (ApiError::Unavailable("x".into()), 503, "unavailable"),
            (ApiError::GatewayTimeout("x".into()), 504, "device_timeout"),
        ];
        for (error, status, code) in cases {
            let problem = error.problem();
            assert_eq!((problem.status, problem.code.as_str()), (status, code));
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "application/problem+json"
            );
        }
        // The cause of a 500 is logged, never shown.
        let shown = ApiError::Internal("password=hunter2".into()).problem();
        assert!(!shown.detail.contains("hunter2"));
    }
}
