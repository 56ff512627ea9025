//! Webhook deliveries: verify them as the contract says, then keep only the facts.
//!
//! Verification: the `X-Gitlab-Token` header is hashed and compared in constant time with the
//! stored digest of the token golive issued; when a signing key was issued, a Standard Webhooks
//! `webhook-signature` over `{webhook-id}.{webhook-timestamp}.{body}` must match too (any of
//! several space-separated `v1,` signatures), with a timestamp at most 5 minutes off. The facts
//! kept are kind, action, status, project, instance, GitLab's ids, received-at and a SHA-256 of
//! the body — never the body, which carries personal data.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::{GitlabEvent, TokenDigest};

/// GitLab's own limit on payloads; the receiver accepts up to this many bytes.
pub const MAX_BODY_BYTES: usize = 25 * 1024 * 1024;
/// How far a signed delivery's timestamp may be from now.
pub const MAX_SIGNATURE_SKEW_SECONDS: i64 = 5 * 60;

/// The headers of a delivery that golive reads (names compared case-insensitively).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DeliveryHeaders {
    pub event: Option<String>,
    pub token: Option<String>,
    pub instance: Option<String>,
    pub webhook_uuid: Option<String>,
    pub event_uuid: Option<String>,
    pub idempotency_key: Option<String>,
    pub user_agent: Option<String>,
    pub webhook_id: Option<String>,
    pub webhook_timestamp: Option<String>,
    pub webhook_signature: Option<String>,
}

impl std::fmt::Debug for DeliveryHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryHeaders")
            .field("event", &self.event)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("idempotency_key", &self.idempotency_key)
            .finish_non_exhaustive()
    }
}

impl DeliveryHeaders {
    /// Collects the headers golive reads from name/value pairs.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut headers = DeliveryHeaders::default();
        for (name, value) in pairs {
            let value = Some(value.trim().to_owned());
            match name.trim().to_ascii_lowercase().as_str() {
                "x-gitlab-event" => headers.event = value,
                // GitLab removes line breaks from the token; so does golive.
                "x-gitlab-token" => headers.token = value.map(|v| v.replace(['\r', '\n'], "")),
                "x-gitlab-instance" => headers.instance = value,
                "x-gitlab-webhook-uuid" => headers.webhook_uuid = value,
                "x-gitlab-event-uuid" => headers.event_uuid = value,
                "idempotency-key" => headers.idempotency_key = value,
                "user-agent" => headers.user_agent = value,
                "webhook-id" => headers.webhook_id = value,
                "webhook-timestamp" => headers.webhook_timestamp = value,
                "webhook-signature" => headers.webhook_signature = value,
                _ => {}
            }
        }
        headers
    }

    /// Parses headers written as `Name: value` lines (as copied from GitLab's "Recent events")
    /// or as a JSON object.
    pub fn parse_text(text: &str) -> Result<Self, String> {
        let trimmed = text.trim_start();
        if trimmed.starts_with('{') {
            let map: serde_json::Map<String, Value> =
                serde_json::from_str(trimmed).map_err(|e| format!("headers JSON: {e}"))?;
            let pairs: Vec<(String, String)> = map
                .into_iter()
                .map(|(k, v)| (k, v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())))
                .collect();
            return Ok(Self::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
        }
        let mut pairs = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let (name, value) =
                line.split_once(':').ok_or_else(|| format!("headers line {}: expected `Name: value`", n + 1))?;
            pairs.push((name.to_owned(), value.to_owned()));
        }
        Ok(Self::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
    }
}

/// Why a delivery was refused as unauthenticated (401): counted, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no webhook credentials were issued for this integration")]
    NoCredentials,
    #[error("the X-Gitlab-Token header is missing")]
    MissingToken,
    #[error("the X-Gitlab-Token header does not match the issued secret token")]
    WrongToken,
    #[error("a signing key is configured but the delivery carries no webhook-signature")]
    MissingSignature,
    #[error("no webhook-signature matches")]
    WrongSignature,
    #[error("the webhook-timestamp is missing, malformed or more than 5 minutes off")]
    StaleTimestamp,
}

/// Why a delivery is malformed (400): nothing stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("the X-Gitlab-Event header is missing")]
    MissingEvent,
    #[error("the body is not a JSON object: {0}")]
    NotJson(String),
    #[error("the body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("object_kind {object_kind:?} does not match X-Gitlab-Event {event:?}")]
    KindMismatch { event: String, object_kind: String },
}

/// Checks the token (and signature) of a delivery in constant time: [`verify_headers`] then
/// [`verify_signature`].
pub fn verify(
    headers: &DeliveryHeaders,
    body: &[u8],
    token_digest: Option<&TokenDigest>,
    signing_key: Option<&[u8]>,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    verify_headers(headers, token_digest, signing_key.is_some(), now)?;
    verify_signature(headers, body, signing_key)
}

/// Everything that can be checked before the body is read: the token (in constant time) and,
/// when the delivery must be signed, that it carries a signature, an id and a fresh timestamp.
pub fn verify_headers(
    headers: &DeliveryHeaders,
    token_digest: Option<&TokenDigest>,
    must_be_signed: bool,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    let expected = token_digest.ok_or(Refusal::NoCredentials)?;
    let token = headers.token.as_deref().ok_or(Refusal::MissingToken)?;
    let presented = hex::encode(Sha256::digest(token.as_bytes()));
    if !bool::from(presented.as_bytes().ct_eq(expected.0.as_bytes())) {
        return Err(Refusal::WrongToken);
    }
    if must_be_signed {
        headers.webhook_signature.as_deref().ok_or(Refusal::MissingSignature)?;
        signed_id(headers).ok_or(Refusal::MissingSignature)?;
        let timestamp = headers.webhook_timestamp.as_deref().ok_or(Refusal::StaleTimestamp)?;
        let seconds: i64 = timestamp.parse().map_err(|_| Refusal::StaleTimestamp)?;
        // Checked: a timestamp near i64::MIN must not wrap into "close to now".
        let skew = now.timestamp().checked_sub(seconds).and_then(i64::checked_abs);
        if skew.is_none_or(|skew| skew > MAX_SIGNATURE_SKEW_SECONDS) {
            return Err(Refusal::StaleTimestamp);
        }
    }
    Ok(())
}

/// The message id a signed delivery is signed with: `webhook-id`, or the `Idempotency-Key`
/// (which GitLab sets to the same value).
pub fn signed_id(headers: &DeliveryHeaders) -> Option<&str> {
    headers.webhook_id.as_deref().or(headers.idempotency_key.as_deref())
}

/// Checks the Standard Webhooks signature over `{webhook-id}.{webhook-timestamp}.{body}` when a
/// signing key was issued (any of several space-separated `v1,` signatures may match).
pub fn verify_signature(headers: &DeliveryHeaders, body: &[u8], signing_key: Option<&[u8]>) -> Result<(), Refusal> {
    let Some(key) = signing_key else { return Ok(()) };
    let signatures = headers.webhook_signature.as_deref().ok_or(Refusal::MissingSignature)?;
    let id = signed_id(headers).ok_or(Refusal::MissingSignature)?;
    let timestamp = headers.webhook_timestamp.as_deref().ok_or(Refusal::StaleTimestamp)?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    let matches = signatures.split_whitespace().filter_map(|s| s.strip_prefix("v1,")).any(|candidate| {
        STANDARD.decode(candidate).map(|bytes| bool::from(bytes.as_slice().ct_eq(expected.as_slice()))).unwrap_or(false)
    });
    if !matches {
        return Err(Refusal::WrongSignature);
    }
    Ok(())
}

/// The decoded HMAC key of a `whsec_<base64>` signing key.
pub fn signing_key_bytes(written: &str) -> Option<Vec<u8>> {
    STANDARD.decode(written.strip_prefix("whsec_")?).ok()
}

/// Signs a delivery as GitLab would (tests, examples).
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// A JSON value kept only as short text: a non-empty string (its first 200 characters) or a
/// number. Anything else, and every field not named in [`Payload`], is skipped without being
/// kept, so a delivery costs its body and little more however it is shaped.
#[derive(Default)]
struct Text(Option<String>);

impl<'de> serde::Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<Text, E> {
                Ok(Text((!v.is_empty()).then(|| v.chars().take(200).collect())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Text, E> {
                Ok(Text(Some(v.to_string())))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Text, E> {
                Ok(Text(Some(v.to_string())))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Text, E> {
                Ok(Text(Some(serde_json::Number::from_f64(v).map(|n| n.to_string()).unwrap_or_default())))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_unit<E>(self) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Text, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Text, A::Error> {
                while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A JSON object read as `T`; any other value is skipped and read as `None` (as a lookup by
/// path in a parsed document would find nothing there).
struct ObjectOr<T>(Option<T>);

impl<T> Default for ObjectOr<T> {
    fn default() -> Self {
        ObjectOr(None)
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for ObjectOr<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
            type Value = ObjectOr<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<ObjectOr<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(|t| ObjectOr(Some(t)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<ObjectOr<T>, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(ObjectOr(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<ObjectOr<T>, E> {
                Ok(ObjectOr(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<ObjectOr<T>, E> {
                Ok(ObjectOr(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<ObjectOr<T>, E> {
                Ok(ObjectOr(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<ObjectOr<T>, E> {
                Ok(ObjectOr(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<ObjectOr<T>, E> {
                Ok(ObjectOr(None))
            }
            fn visit_unit<E>(self) -> Result<ObjectOr<T>, E> {
                Ok(ObjectOr(None))
            }
        }
        deserializer.deserialize_any(Visitor(std::marker::PhantomData))
    }
}

/// The few fields of a payload golive keeps (a field named twice is malformed).
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct Payload {
    object_kind: Text,
    object_attributes: ObjectOr<Attributes>,
    build_id: Text,
    build_status: Text,
    after: Text,
    project: ObjectOr<Project>,
}

#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct Attributes {
    id: Text,
    action: Text,
    status: Text,
}

#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct Project {
    path_with_namespace: Text,
}

/// `X-Gitlab-Event` values GitLab sends that golive does not use. GitLab names the header after
/// the hook's trigger (`WebHookService.hook_to_event`: `emoji_hooks` → `Emoji Hook`; any system
/// hook → `System Hook`); these are the project and group hook triggers golive has no use for
/// (`ProjectHook::AVAILABLE_HOOKS`, `GroupHook`'s `triggerable_hooks`, `milestone_hooks`,
/// `resource_deploy_token_hooks`). They are answered 2xx and counted under their own name; any
/// other value is counted as `other`.
pub const UNUSED_EVENTS: [&str; 9] = [
    "Emoji Hook",
    "Feature Flag Hook",
    "Member Hook",
    "Milestone Hook",
    "Project Hook",
    "Resource Access Token Hook",
    "Resource Deploy Token Hook",
    "Subgroup Hook",
    "Vulnerability Hook",
];

/// What a verified, well-formed delivery is to golive.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryFacts {
    /// The `record_webhook_delivery` input: facts only, no body.
    Record(Value),
    /// A GitLab event golive does not use (an event in [`UNUSED_EVENTS`], an `X-Gitlab-Event`
    /// golive does not know, a `System Hook` whose `object_kind` is none of a project's push, tag
    /// push or merge request, or a resend GitLab stripped because its logged request was too
    /// large): answered 2xx and counted, never stored, never evidence.
    Unused,
}

impl DeliveryFacts {
    /// The facts to record, if the delivery is one golive uses.
    pub fn into_record(self) -> Option<Value> {
        match self {
            DeliveryFacts::Record(facts) => Some(facts),
            DeliveryFacts::Unused => None,
        }
    }
}

/// The request data GitLab logs, and so resends, in place of a delivery whose log entry was too
/// large (`WebHookLog::OVERSIZE_REQUEST_DATA`, written by `WebHookService` when the log job
/// exceeds Sidekiq's size limit).
fn is_oversize_marker(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Map<String, Value>>(body)
        .is_ok_and(|map| map.len() == 1 && map.get("oversize") == Some(&Value::Bool(true)))
}

/// What a verified delivery is to golive: the `record_webhook_delivery` input (facts only, no
/// body), or [`DeliveryFacts::Unused`]. A body that is not a JSON object, or whose `object_kind`
/// contradicts an `X-Gitlab-Event` golive uses, is [`Malformed`].
pub fn delivery_facts(
    headers: &DeliveryHeaders,
    body: &[u8],
    received_at: DateTime<Utc>,
) -> Result<DeliveryFacts, Malformed> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Malformed::TooLarge);
    }
    let header = headers.event.as_deref().ok_or(Malformed::MissingEvent)?;
    let payload: ObjectOr<Payload> = serde_json::from_slice(body).map_err(|e| Malformed::NotJson(e.to_string()))?;
    let Some(payload) = payload.0 else {
        return Err(Malformed::NotJson("not an object".into()));
    };
    // Any other header value is a GitLab event golive has no use for (GitLab adds triggers over
    // time): a 4xx would count as a failure towards disabling the customer's hook.
    let Some(event) = GitlabEvent::from_header(header) else {
        return Ok(DeliveryFacts::Unused);
    };
    if is_oversize_marker(body) {
        return Ok(DeliveryFacts::Unused);
    }
    let attributes = payload.object_attributes.0.unwrap_or_default();
    let object_kind = payload.object_kind.0;
    let expected = event.object_kinds();
    match &object_kind {
        // System hooks also carry events golive does not use under an object_kind of their own
        // (e.g. `gitlab_subscription_member_approval`).
        Some(kind) if event.object_kind_optional() && !expected.contains(&kind.as_str()) => {
            return Ok(DeliveryFacts::Unused);
        }
        Some(kind) if !expected.contains(&kind.as_str()) => {
            return Err(Malformed::KindMismatch { event: header.to_owned(), object_kind: kind.clone() });
        }
        None if !event.object_kind_optional() => {
            return Err(Malformed::KindMismatch { event: header.to_owned(), object_kind: String::new() });
        }
        _ => {}
    }
    // Only facts of a known shape are kept: what the sender chose to write into a field is never
    // copied into the log (the log is read by every viewer and outlives the delivery).
    let after = payload.after.0.filter(|a| is_commit_sha(a));
    let object_id = attributes.id.0.filter(|i| is_numeric_id(i)).or(payload.build_id.0.filter(|i| is_numeric_id(i)));
    let object_id = object_id.or_else(|| after.clone());
    let project = payload.project.0.and_then(|p| p.path_with_namespace.0).filter(|p| is_project_path(p));
    let instance = headers.instance.as_deref().and_then(instance_origin);
    let uuid_shaped = |v: &Option<String>| v.clone().filter(|s| uuid::Uuid::parse_str(s).is_ok());
    let action = attributes.action.0.map(|a| known_or_other(a, KNOWN_ACTIONS));
    let status = attributes.status.0.or(payload.build_status.0).map(|s| known_or_other(s, KNOWN_STATUSES));
    let user_agent = headers.user_agent.clone().filter(|ua| is_gitlab_user_agent(ua));
    let mut facts = json!({
        "type": "record_webhook_delivery",
        "event": event,
        "received_at": received_at,
        "body_sha256": hex::encode(Sha256::digest(body)),
        "signed": headers.webhook_signature.is_some(),
    });
    let map = facts.as_object_mut().expect("an object");
    let mut put = |key: &str, value: Option<String>| {
        if let Some(v) = value {
            map.insert(key.to_owned(), Value::String(v));
        }
    };
    put("object_kind", object_kind);
    put("action", action);
    put("status", status);
    put("after", after);
    put("project", project);
    put("instance", instance);
    put("object_id", object_id);
    put("idempotency_key", uuid_shaped(&headers.idempotency_key));
    put("webhook_uuid", uuid_shaped(&headers.webhook_uuid));
    put("user_agent", user_agent);
    Ok(DeliveryFacts::Record(facts))
}

/// Actions GitLab puts in `object_attributes.action` (merge requests, issues, notes, releases,
/// deployments); anything else is recorded as `other`.
const KNOWN_ACTIONS: &[&str] = &[
    "open",
    "reopen",
    "close",
    "update",
    "merge",
    "approved",
    "unapproved",
    "approval",
    "unapproval",
    "create",
    "delete",
];

/// Pipeline, job and deployment statuses; anything else is recorded as `other`.
const KNOWN_STATUSES: &[&str] = &[
    "created",
    "waiting_for_resource",
    "preparing",
    "pending",
    "running",
    "success",
    "failed",
    "canceled",
    "skipped",
    "manual",
    "scheduled",
    "blocked",
];

fn known_or_other(value: String, known: &[&str]) -> String {
    if known.contains(&value.as_str()) {
        value
    } else {
        "other".to_owned()
    }
}

/// A commit SHA: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
fn is_commit_sha(text: &str) -> bool {
    (text.len() == 40 || text.len() == 64) && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// GitLab's object ids are positive integers.
fn is_numeric_id(text: &str) -> bool {
    (1..=20).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit())
}

/// `group/subgroup/project`: GitLab's path characters only, no spaces or markup.
fn is_project_path(text: &str) -> bool {
    (1..=255).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
}

/// `X-Gitlab-Instance` reduced to its origin: the sender's path or query is not kept.
fn instance_origin(text: &str) -> Option<String> {
    crate::domain::HttpUrl::parse(text).ok().map(|url| crate::domain::origin_of(&url))
}

/// `GitLab/<version>`, as GitLab sends it.
fn is_gitlab_user_agent(text: &str) -> bool {
    text.strip_prefix("GitLab/").is_some_and(|version| {
        (1..=40).contains(&version.len())
            && version.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_now() -> chrono::DateTime<Utc> {
        chrono::DateTime::parse_from_rfc3339("2026-11-29T12:00:00Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn only_facts_of_a_known_shape_reach_the_record_never_the_sender_s_words() {
        let pairs = [
            ("x-gitlab-event", "Merge Request Hook"),
            ("user-agent", "EVIL-UA GitLab/16"),
            ("x-gitlab-instance", "https://gitlab.example.com/EVIL-INSTANCE?q=1"),
            ("x-gitlab-webhook-uuid", "EVIL-UUID"),
            ("idempotency-key", "EVIL-IDEM"),
        ];
        let headers = DeliveryHeaders::from_pairs(pairs.iter().copied());
        let body = br#"{"object_kind":"merge_request","project":{"path_with_namespace":"alice/EVIL ignore previous instructions"},"object_attributes":{"id":"EVIL-OBJECT-ID <script>","action":"EVIL-ACTION pwned","status":"EVIL-STATUS"}}"#;
        let facts = delivery_facts(&headers, body, test_now()).unwrap().into_record().unwrap();
        let text = facts.to_string();
        assert!(!text.contains("EVIL"), "{text}");
        assert_eq!(facts["action"], "other");
        assert_eq!(facts["status"], "other");
        assert_eq!(facts["instance"], "https://gitlab.example.com");
        for absent in ["project", "object_id", "user_agent", "webhook_uuid", "idempotency_key"] {
            assert!(facts.get(absent).is_none(), "{absent}: {text}");
        }

        let uuid = "5f0c8d7e-1b2a-4c3d-9e8f-0a1b2c3d4e5f";
        let pairs = [
            ("x-gitlab-event", "Push Hook"),
            ("user-agent", "GitLab/17.5.1-ee"),
            ("x-gitlab-webhook-uuid", uuid),
            ("idempotency-key", uuid),
        ];
        let headers = DeliveryHeaders::from_pairs(pairs.iter().copied());
        let after = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7";
        let body = format!(
            r#"{{"object_kind":"push","after":"{after}","project":{{"path_with_namespace":"group/sub.group/my-project_1"}}}}"#
        );
        let facts = delivery_facts(&headers, body.as_bytes(), test_now()).unwrap().into_record().unwrap();
        assert_eq!(facts["after"], after);
        assert_eq!(facts["object_id"], after);
        assert_eq!(facts["project"], "group/sub.group/my-project_1");
        assert_eq!(facts["user_agent"], "GitLab/17.5.1-ee");
        assert_eq!(facts["webhook_uuid"], uuid);
    }

    #[test]
    fn signatures_verify_with_any_of_several_and_not_when_stale() {
        let key = b"0123456789abcdef0123456789abcdef";
        let token = "glw_token";
        let digest = TokenDigest(hex::encode(Sha256::digest(token.as_bytes())));
        let now = test_now();
        let body = br#"{"object_kind":"push"}"#;
        let good = sign(key, "msg_1", now.timestamp(), body);
        let mut headers = DeliveryHeaders {
            token: Some(token.into()),
            webhook_id: Some("msg_1".into()),
            webhook_timestamp: Some(now.timestamp().to_string()),
            webhook_signature: Some(format!("v1,AAAA {good}")),
            ..Default::default()
        };
        assert_eq!(verify(&headers, body, Some(&digest), Some(key), now), Ok(()));
        assert_eq!(verify(&headers, b"{}", Some(&digest), Some(key), now), Err(Refusal::WrongSignature));
        headers.webhook_timestamp = Some((now.timestamp() - 301).to_string());
        assert_eq!(verify(&headers, body, Some(&digest), Some(key), now), Err(Refusal::StaleTimestamp));
        headers.token = Some("other".into());
        assert_eq!(verify(&headers, body, Some(&digest), Some(key), now), Err(Refusal::WrongToken));
        headers.token = None;
        assert_eq!(verify(&headers, body, Some(&digest), None, now), Err(Refusal::MissingToken));
    }

    #[test]
    fn facts_keep_only_named_fields_whatever_their_shape() {
        let headers = DeliveryHeaders { event: Some("Merge Request Hook".into()), ..Default::default() };
        let body = br#"{"padding": [[1, 2, {"x": "y"}], "z"], "object_kind": "merge_request",
            "object_attributes": {"id": 17, "action": "open", "status": null, "description": "long"},
            "project": "not an object", "after": ""}"#;
        let facts = delivery_facts(&headers, body, test_now()).unwrap().into_record().unwrap();
        assert_eq!(facts["object_kind"], "merge_request");
        assert_eq!(facts["object_id"], "17");
        assert_eq!(facts["action"], "open");
        for absent in ["status", "project", "after", "description", "padding"] {
            assert!(facts.get(absent).is_none(), "{absent}: {facts}");
        }
        let long =
            format!(r#"{{"object_kind": "merge_request", "object_attributes": {{"action": "{}"}}}}"#, "a".repeat(500));
        let facts = delivery_facts(&headers, long.as_bytes(), test_now()).unwrap().into_record().unwrap();
        assert_eq!(facts["action"], "other", "an action outside GitLab's vocabulary is not copied");
        for bad in [&b"[1, 2]"[..], b"\"just text\"", b"{\"object_kind\": \"merge_request\"} trailing", b"{"] {
            assert!(matches!(delivery_facts(&headers, bad, test_now()), Err(Malformed::NotJson(_))));
        }
    }

    #[test]
    fn events_golive_does_not_use_are_unused_not_malformed_unless_the_body_is() {
        let facts = |event: &str, body: &[u8]| {
            let headers = DeliveryHeaders { event: Some(event.into()), ..Default::default() };
            delivery_facts(&headers, body, test_now())
        };
        for event in UNUSED_EVENTS.iter().copied().chain(["Made Up Hook", "push hook", ""]) {
            assert_eq!(facts(event, br#"{"object_kind":"emoji"}"#), Ok(DeliveryFacts::Unused), "{event}");
            assert!(matches!(facts(event, b"<xml/>"), Err(Malformed::NotJson(_))), "{event}");
        }
        // A system hook: the project payloads it carries are recorded, its own events too (they
        // prove the path: GitLab's system hook test sends `project_create`), other kinds unused.
        for kind in ["push", "tag_push", "merge_request"] {
            let body = format!(r#"{{"object_kind":"{kind}","event_name":"{kind}"}}"#);
            let record = facts("System Hook", body.as_bytes()).unwrap().into_record().unwrap();
            assert_eq!((record["event"].as_str(), record["object_kind"].as_str()), (Some("System Hook"), Some(kind)));
        }
        let system = facts("System Hook", br#"{"event_name":"project_create"}"#).unwrap().into_record().unwrap();
        assert!(system.get("object_kind").is_none(), "{system}");
        let approval = br#"{"object_kind":"gitlab_subscription_member_approval","action":"enqueue"}"#;
        assert_eq!(facts("System Hook", approval), Ok(DeliveryFacts::Unused));
        // A contradiction on an event golive uses stays malformed; GitLab's stripped resend does not.
        assert!(matches!(facts("Issue Hook", br#"{"object_kind":"push"}"#), Err(Malformed::KindMismatch { .. })));
        assert!(matches!(facts("Push Hook", br#"{"user":"x"}"#), Err(Malformed::KindMismatch { .. })));
        assert_eq!(facts("Push Hook", br#"{"oversize": true}"#), Ok(DeliveryFacts::Unused));
        assert!(matches!(facts("Push Hook", br#"{"oversize": true, "x": 1}"#), Err(Malformed::KindMismatch { .. })));
    }

    #[test]
    fn headers_parse_from_lines_or_json() {
        let h = DeliveryHeaders::parse_text("X-Gitlab-Event: Push Hook\nx-gitlab-token: abc\r\nIdempotency-Key: k1\n")
            .unwrap();
        assert_eq!(h.event.as_deref(), Some("Push Hook"));
        assert_eq!(h.token.as_deref(), Some("abc"));
        assert_eq!(h.idempotency_key.as_deref(), Some("k1"));
        let h = DeliveryHeaders::parse_text(r#"{"X-Gitlab-Event": "Issue Hook"}"#).unwrap();
        assert_eq!(h.event.as_deref(), Some("Issue Hook"));
        assert!(!format!("{h:?}").contains("abc"));
    }
}
