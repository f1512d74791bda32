//! Errors of the protocol crate. Decoding never panics: every malformed input ends here.

/// A field outside its documented range.
#[allow(missing_docs)] // each variant is described by its `#[error]` text
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMessage {
    #[error("field `{0}` is out of range")]
    OutOfRange(&'static str),
}

/// Why bytes from a locker or the gateway were not accepted as a message.
#[allow(missing_docs)] // each variant is described by its `#[error]` text
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message ends early")]
    Truncated,
    #[error("length field says {declared} bytes, {actual} are present")]
    LengthMismatch { declared: usize, actual: usize },
    #[error("body of {0} bytes is longer than allowed")]
    TooLong(usize),
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    #[error("unknown direction {0}")]
    UnknownDirection(u8),
    #[error("unknown body encoding {0}")]
    UnknownEncoding(u8),
    #[error("body encoding does not match the transport")]
    WrongEncoding,
    #[error("invalid device id")]
    InvalidDeviceId,
    #[error("unknown message type {0}")]
    UnknownMessageType(String),
    #[error("message travels the other way")]
    WrongDirection,
    #[error("envelope names device `{got}`, expected `{expected}`")]
    WrongDevice { expected: String, got: String },
    #[error("tag does not verify")]
    BadTag,
    #[error("hello names session {body} but its envelope says {envelope}")]
    SessionMismatch { envelope: u32, body: u32 },
    #[error("unknown code {value} in field `{field}`")]
    UnknownCode { field: &'static str, value: u8 },
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error(transparent)]
    Invalid(#[from] InvalidMessage),
}

impl DecodeError {
    /// A short stable label for logs and metrics (`bad_tag`, `truncated`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::LengthMismatch { .. } => "length_mismatch",
            Self::TooLong(_) => "too_long",
            Self::UnsupportedVersion(_) => "unsupported_version",
            Self::UnknownDirection(_) => "unknown_direction",
            Self::UnknownEncoding(_) => "unknown_encoding",
            Self::WrongEncoding => "wrong_encoding",
            Self::InvalidDeviceId => "invalid_device_id",
            Self::UnknownMessageType(_) => "unknown_message_type",
            Self::WrongDirection => "wrong_direction",
            Self::WrongDevice { .. } => "wrong_device",
            Self::BadTag => "bad_tag",
            Self::SessionMismatch { .. } => "session_mismatch",
            Self::UnknownCode { .. } => "unknown_code",
            Self::Json(_) => "malformed_json",
            Self::Invalid(_) => "out_of_range",
        }
    }
}

impl From<serde_json::Error> for DecodeError {
    fn from(e: serde_json::Error) -> Self {
        // serde_json reports our own range checks (e.g. CommandId) as custom errors; keep the text.
        Self::Json(e.to_string())
    }
}
