//! JSON and MessagePack, chosen by the message's `Content-Type` (SPEC §5).

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Deepest nesting of arrays and maps a payload may have (serde_json's own limit).
pub const MAX_DEPTH: usize = 128;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Encoding {
    #[default]
    Json,
    MsgPack,
}

/// A payload that cannot be read as what it claims to be.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unsupported content type {0:?}: use application/json or application/msgpack")]
    ContentType(String),
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid MessagePack: {0}")]
    MsgPack(#[from] rmp_serde::decode::Error),
}

impl Encoding {
    pub const JSON: &'static str = "application/json";
    pub const MSGPACK: &'static str = "application/msgpack";

    /// No header means JSON; parameters such as `; charset=utf-8` are ignored.
    pub fn from_content_type(value: Option<&str>) -> Result<Self, DecodeError> {
        let Some(value) = value else {
            return Ok(Self::Json);
        };
        let media = value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "" | Self::JSON => Ok(Self::Json),
            Self::MSGPACK | "application/x-msgpack" | "application/vnd.msgpack" => {
                Ok(Self::MsgPack)
            }
            _ => Err(DecodeError::ContentType(value.to_string())),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => Self::JSON,
            Self::MsgPack => Self::MSGPACK,
        }
    }

    /// Decodes untrusted bytes. Nesting is bounded alike in both encodings (serde_json's
    /// own limit is 128 levels; MessagePack's is set to the same, down from rmp-serde's
    /// 1,024, so that no payload can take a decoding thread's stack), and a length that
    /// claims more than the payload holds is an error, not an allocation.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, DecodeError> {
        Ok(match self {
            Self::Json => serde_json::from_slice(bytes)?,
            Self::MsgPack => {
                let mut decoder = rmp_serde::Deserializer::from_read_ref(bytes);
                decoder.set_max_depth(MAX_DEPTH);
                T::deserialize(&mut decoder)?
            }
        })
    }

    /// Encodes a value of this crate's types; these always encode.
    pub fn encode<T: Serialize>(self, value: &T) -> Vec<u8> {
        match self {
            // Serialising these types to a Vec cannot fail: no maps with non-string keys.
            Self::Json => serde_json::to_vec(value).unwrap_or_default(),
            Self::MsgPack => rmp_serde::to_vec_named(value).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorInfo, Job, JobResult, LimitKind, Status, TraceEntry};

    fn sample_job() -> Job {
        serde_json::from_value(serde_json::json!({
            "id": "job-1", "tenant": "acme",
            "action": {"name": "getOrder", "type": "python",
                       "python": {"code": "def execute_action(c):\n    return c['args']\n"},
                       "parameters": {"orderId": {"type": "string", "description": "the order"}},
                       "limits": {"fuel": 1000}, "allowed_hosts": ["*.example.com"]},
            "args": {"orderId": "A1", "qty": 3, "nested": {"x": [1, 2.5, null, true]}},
            "conversation": {"id": "c1", "metadata": {"k": "v"}, "tags": ["a"], "extra": 1},
            "test": true, "timeout_ms": 500, "reply_to": "inbox.1"
        }))
        .unwrap()
    }

    fn sample_result() -> JobResult {
        let mut result = JobResult::empty(
            "job-1",
            "getOrder",
            Status::LimitExceeded,
            Some(ErrorInfo::limit(LimitKind::Fuel, "out of fuel")),
        );
        result.output = serde_json::json!({"a": [1, "two", {"three": 3.5}]});
        result.trace.push(TraceEntry {
            kind: "http".into(),
            status: Some(200),
            ms: 3,
            ..Default::default()
        });
        result
    }

    #[test]
    fn jobs_and_results_round_trip_in_both_encodings() {
        for enc in [Encoding::Json, Encoding::MsgPack] {
            let job = sample_job();
            assert_eq!(
                enc.decode::<Job>(&enc.encode(&job)).unwrap(),
                job,
                "{enc:?}"
            );
            let result = sample_result();
            assert_eq!(
                enc.decode::<JobResult>(&enc.encode(&result)).unwrap(),
                result,
                "{enc:?}"
            );
        }
    }

    #[test]
    fn results_have_the_spec_field_names() {
        let value = serde_json::to_value(sample_result()).unwrap();
        assert_eq!(value["status"], "limit_exceeded");
        assert_eq!(value["error"]["limit"], "fuel");
        assert_eq!(value["error"]["kind"], "limit");
        for key in [
            "job_id", "action", "output", "effects", "logs", "trace", "stats", "test", "attempt",
            "worker",
        ] {
            assert!(value.get(key).is_some(), "missing {key}");
        }
        for key in ["wall_ms", "fuel_used", "memory_peak_bytes", "http_calls"] {
            assert!(value["stats"].get(key).is_some(), "missing stats.{key}");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(Encoding::from_content_type(None).unwrap(), Encoding::Json);
        assert_eq!(
            Encoding::from_content_type(Some("application/json; charset=utf-8")).unwrap(),
            Encoding::Json
        );
        assert_eq!(
            Encoding::from_content_type(Some("application/msgpack")).unwrap(),
            Encoding::MsgPack
        );
        let err = Encoding::from_content_type(Some("text/xml")).unwrap_err();
        assert!(err.to_string().contains("text/xml"));
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(matches!(
            Encoding::Json.decode::<Job>(b"{not json"),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(
            Encoding::MsgPack.decode::<Job>(&[0xc1]),
            Err(DecodeError::MsgPack(_))
        ));
    }
}
