//! Validated value types ("parse, don't validate").
//!
//! Every field that arrives from outside is turned into one of these types at the edge of the
//! domain. Their constructors are the only place the rules live; once a value exists it is valid,
//! so `decide` never re-checks a format. Each type deserializes through its constructor, which
//! lets serde report the failing field by path.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a single value was refused. The caller adds the field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

fn value_error(message: impl Into<String>) -> ValueError {
    ValueError(message.into())
}

/// The identity of one integration (one customer's GitLab connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct IntegrationId(Uuid);

impl IntegrationId {
    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        Uuid::parse_str(text)
            .map(Self)
            .map_err(|_| value_error("must be a UUID such as 0b7c5a2e-1f2d-4c3b-9a8e-5d6f7a8b9c0d"))
    }
}

impl fmt::Display for IntegrationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Upper bound for short, single-line texts (names, ids, labels).
pub const SHORT_TEXT_MAX_CHARS: usize = 200;
/// Upper bound for free texts (notes, details, summaries).
pub const LONG_TEXT_MAX_CHARS: usize = 4_000;

fn check_text(text: &str, max_chars: usize, multiline: bool) -> Result<(), ValueError> {
    if text.trim().is_empty() {
        return Err(value_error("must not be empty"));
    }
    let chars = text.chars().count();
    if chars > max_chars {
        return Err(value_error(format!("must be at most {max_chars} characters (got {chars})")));
    }
    let allowed_control = |c: char| multiline && (c == '\n' || c == '\t' || c == '\r');
    if text.chars().any(|c| c.is_control() && !allowed_control(c)) {
        return Err(value_error("must not contain control characters"));
    }
    Ok(())
}

/// `TryFrom<String>` through the type's `parse`, and back into `String`: what serde's
/// `try_from`/`into` attributes need.
macro_rules! string_conversions {
    ($name:ident) => {
        impl TryFrom<String> for $name {
            type Error = ValueError;
            fn try_from(text: String) -> Result<Self, ValueError> {
                Self::parse(text)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
    };
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $max:expr, $multiline:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(text: impl Into<String>) -> Result<Self, ValueError> {
                let text = text.into();
                check_text(&text, $max, $multiline)?;
                Ok(Self(text))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        string_conversions!($name);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_type!(
    /// A short single-line text: a customer name, an owner, an application id.
    ShortText,
    SHORT_TEXT_MAX_CHARS,
    false
);
text_type!(
    /// A free text of bounded length: notes, details, summaries, resolutions.
    LongText,
    LONG_TEXT_MAX_CHARS,
    true
);
text_type!(
    /// Who did something: an API token's name, `gitlab`, `probe`, `customer`, an OS user.
    Actor,
    SHORT_TEXT_MAX_CHARS,
    false
);

/// An OAuth or token scope name: `[a-z_]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scope(String);

impl Scope {
    pub fn parse(text: impl Into<String>) -> Result<Self, ValueError> {
        let text = text.into();
        let well_formed = (1..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if !well_formed {
            return Err(value_error(format!("scope {text:?} must match [a-z_]{{1,64}}, e.g. read_repository")));
        }
        Ok(Self(text))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_conversions!(Scope);

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An absolute http(s) URL without credentials or fragment, normalised (no trailing slash).
///
/// Whether plain `http` is acceptable is a playbook decision, checked in `decide`;
/// this type only guarantees the URL is absolute, http(s) and has a host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HttpUrl(String);

impl HttpUrl {
    pub fn parse(text: impl Into<String>) -> Result<Self, ValueError> {
        let text = text.into();
        if text.len() > 2_048 {
            return Err(value_error("URL must be at most 2048 bytes"));
        }
        // The URL parser drops tabs and line breaks silently: a URL holding one is not the URL
        // that was typed, so it is refused rather than changed.
        if text.chars().any(char::is_control) {
            return Err(value_error("must not contain control characters (line breaks, tabs)"));
        }
        let parsed =
            url::Url::parse(&text).map_err(|e| value_error(format!("must be an absolute http(s) URL ({e})")))?;
        if parsed.scheme() != "https" && parsed.scheme() != "http" {
            return Err(value_error(format!(
                "must use https (or http where the playbook allows it), not {}",
                parsed.scheme()
            )));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(value_error("must name a host"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(value_error("must not carry credentials"));
        }
        if parsed.fragment().is_some() {
            return Err(value_error("must not have a #fragment"));
        }
        let normalised = parsed.as_str().trim_end_matches('/').to_owned();
        Ok(Self(normalised))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }
}

string_conversions!(HttpUrl);

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn parse_aws_id(text: &str, prefix: &str) -> Result<(), ValueError> {
    let hex = text
        .strip_prefix(prefix)
        .ok_or_else(|| value_error(format!("must start with {prefix:?} followed by 8 or 17 hex digits")))?;
    let well_formed =
        (hex.len() == 8 || hex.len() == 17) && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !well_formed {
        return Err(value_error(format!(
            "must be {prefix:?} followed by 8 or 17 lowercase hex digits, e.g. {prefix}0a1b2c3d4e5f67890"
        )));
    }
    Ok(())
}

macro_rules! aws_id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(text: impl Into<String>) -> Result<Self, ValueError> {
                let text = text.into();
                parse_aws_id(&text, $prefix)?;
                Ok(Self(text))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        string_conversions!($name);
    };
}

aws_id_type!(
    /// An AWS VPC id: `vpc-` and 8 or 17 hex digits.
    VpcId,
    "vpc-"
);
aws_id_type!(
    /// An AWS VPC peering connection id: `pcx-` and 8 or 17 hex digits.
    PeeringId,
    "pcx-"
);

/// A calendar date written `YYYY-MM-DD` (UTC dates throughout golive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Date(NaiveDate);

impl Date {
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        let well_shaped = text.len() == 10
            && text.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
        if !well_shaped {
            return Err(value_error(format!("{text:?} must be a date written YYYY-MM-DD")));
        }
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(Self)
            .map_err(|_| value_error(format!("{text:?} is not a calendar date")))
    }
    pub fn from_naive(date: NaiveDate) -> Self {
        Self(date)
    }
    pub fn naive(&self) -> NaiveDate {
        self.0
    }
}

impl TryFrom<String> for Date {
    type Error = ValueError;
    fn try_from(text: String) -> Result<Self, ValueError> {
        Self::parse(&text)
    }
}

impl From<Date> for String {
    fn from(value: Date) -> String {
        value.0.format("%Y-%m-%d").to_string()
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

/// A PEM-encoded CA certificate (one or more `CERTIFICATE` blocks), bounded in size.
///
/// Only the shape is checked here; the probe parses the DER and reports what it finds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CaCertificatePem(String);

/// The largest CA bundle accepted, in bytes: generous for a chain of several certificates.
pub const CA_CERTIFICATE_MAX_BYTES: usize = 64 * 1024;

impl CaCertificatePem {
    pub fn parse(text: impl Into<String>) -> Result<Self, ValueError> {
        let text = text.into();
        if text.len() > CA_CERTIFICATE_MAX_BYTES {
            return Err(value_error(format!("must be at most {CA_CERTIFICATE_MAX_BYTES} bytes")));
        }
        let begins = text.matches("-----BEGIN CERTIFICATE-----").count();
        let ends = text.matches("-----END CERTIFICATE-----").count();
        if begins == 0 || begins != ends {
            return Err(value_error(
                "must be a PEM certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)",
            ));
        }
        if text.contains("PRIVATE KEY") {
            return Err(value_error("contains a private key: send only the CA certificate, never a key"));
        }
        Ok(Self(text))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_conversions!(CaCertificatePem);

/// A TCP port in 1..=65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u16")]
pub struct Port(u16);

impl Port {
    pub const SSH_DEFAULT: Port = Port(22);
    pub fn new(port: u32) -> Result<Self, ValueError> {
        match u16::try_from(port) {
            Ok(p) if p >= 1 => Ok(Self(p)),
            _ => Err(value_error(format!("port {port} must be in 1..=65535"))),
        }
    }
    pub fn get(&self) -> u16 {
        self.0
    }
}

impl TryFrom<u32> for Port {
    type Error = ValueError;
    fn try_from(port: u32) -> Result<Self, ValueError> {
        Self::new(port)
    }
}

impl From<Port> for u16 {
    fn from(value: Port) -> u16 {
        value.0
    }
}

/// JSON Schemas of the value types (for the events' schema): each states its constructor's
/// rules as far as JSON Schema can, so a reader of the schema learns what the log can hold.
macro_rules! string_schema {
    ($name:ident, $schema:tt) => {
        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!($schema)
            }
        }
    };
}

string_schema!(ShortText, {"type": "string", "minLength": 1, "maxLength": 200, "description": "A single-line text, not blank, without control characters"});
string_schema!(LongText, {"type": "string", "minLength": 1, "maxLength": 4000, "description": "A free text, not blank, without control characters but newlines and tabs"});
string_schema!(Scope, {"type": "string", "pattern": "^[a-z_]{1,64}$"});
string_schema!(HttpUrl, {"type": "string", "format": "uri", "maxLength": 2048, "pattern": "^https?://", "description": "An absolute http(s) URL without credentials or fragment, no trailing slash"});
string_schema!(VpcId, {"type": "string", "pattern": "^vpc-([0-9a-f]{8}|[0-9a-f]{17})$"});
string_schema!(PeeringId, {"type": "string", "pattern": "^pcx-([0-9a-f]{8}|[0-9a-f]{17})$"});
string_schema!(Date, {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"});
string_schema!(CaCertificatePem, {"type": "string", "maxLength": 65536, "description": "PEM certificates of an internal CA"});
string_schema!(Port, {"type": "integer", "minimum": 1, "maximum": 65535});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_follow_the_contract_pattern() {
        assert!(Scope::parse("read_repository").is_ok());
        assert!(Scope::parse("").is_err());
        assert!(Scope::parse("Read").is_err());
        assert!(Scope::parse("api-v4").is_err());
        assert!(Scope::parse("a".repeat(64)).is_ok());
        assert!(Scope::parse("a".repeat(65)).is_err());
    }

    #[test]
    fn aws_ids_take_8_or_17_hex_digits() {
        assert!(VpcId::parse("vpc-0a1b2c3d").is_ok());
        assert!(VpcId::parse("vpc-0a1b2c3d4e5f67890").is_ok());
        assert!(VpcId::parse("vpc-0a1b2c3").is_err());
        assert!(VpcId::parse("vpc-0a1b2c3g").is_err());
        assert!(VpcId::parse("pcx-0a1b2c3d").is_err());
        assert!(PeeringId::parse("pcx-0a1b2c3d").is_ok());
    }

    #[test]
    fn dates_are_strict() {
        assert!(Date::parse("2026-02-28").is_ok());
        assert!(Date::parse("2026-02-30").is_err());
        assert!(Date::parse("2026-2-3").is_err());
        assert!(Date::parse("26-02-03").is_err());
        assert!(Date::parse("2026-02-03T00:00:00Z").is_err());
    }

    #[test]
    fn urls_must_be_absolute_http_and_clean() {
        assert_eq!(HttpUrl::parse("https://gitlab.example.com/").unwrap().as_str(), "https://gitlab.example.com");
        assert!(HttpUrl::parse("gitlab.example.com").is_err());
        assert!(HttpUrl::parse("ftp://gitlab.example.com").is_err());
        assert!(HttpUrl::parse("https://user:pw@gitlab.example.com").is_err());
        assert!(!HttpUrl::parse("http://gitlab.internal").unwrap().is_https());
    }

    #[test]
    fn texts_are_bounded_and_non_empty() {
        assert!(ShortText::parse("  ").is_err());
        assert!(ShortText::parse("a\nb").is_err());
        assert!(LongText::parse("a\nb").is_ok());
        assert!(LongText::parse("x".repeat(LONG_TEXT_MAX_CHARS + 1)).is_err());
    }
}
