//! GitLab's answer to a hook test, read as GitLab's code gives it.
//!
//! `POST /projects/:id/hooks/:hook_id/test/:trigger` (`lib/api/hooks/trigger_test.rb`) runs the
//! delivery while the request waits and answers `201` only when the receiver answered 2xx.
//! Otherwise it answers `422 {"message": …}` where the message is, in order of GitLab's code:
//! the sample-data refusal of `app/services/test_hooks/project_service.rb` ("Ensure the project
//! has …"), "Testing not available for this hook" (`test_hooks/base_service.rb`), the
//! receiver's own body (golive's refusal, or whatever answered in golive's place), or the HTTP
//! client's error (`app/services/web_hook_service.rb` rescues it and gives `e.to_s`: Ruby's
//! `Net::ReadTimeout`, "Failed to open TCP connection to … (Connection refused …)",
//! "SSL_connect returned=1 …", "URL is blocked: …").
//!
//! The message is read to classify and then dropped: what golive records is its own sentence.
//! golive recognises its own refusal by its problem document (`type: webhook-refused` and the
//! refusal's sentence) and names the cause.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::webhook::Refusal;
use crate::domain::{DeliveryFailureCause, LongText, TestRequestOutcome, Trigger};
use crate::error_kind::ErrorKind;

fn sentence(text: String) -> LongText {
    LongText::parse(text).expect("golive's own sentence is valid")
}

fn failed(cause: DeliveryFailureCause, reason: String) -> TestRequestOutcome {
    TestRequestOutcome::DeliveryFailed { cause, reason: sentence(reason) }
}

/// What a project has too little of for GitLab to build a sample of `trigger`.
fn sample_needs(trigger: Trigger) -> &'static str {
    match trigger {
        Trigger::Push | Trigger::TagPush => "a commit",
        Trigger::Comments => "a comment",
        Trigger::MergeRequests => "a merge request",
        Trigger::Issues => "an issue",
        Trigger::CiCd => "a pipeline",
        Trigger::Jobs => "a CI job",
        Trigger::Deployments => "a deployment",
        Trigger::Releases => "a release",
    }
}

/// The outcome of a test request from GitLab's `422` message.
pub fn classify_unprocessable(message: &str, trigger: Trigger) -> TestRequestOutcome {
    let trimmed = message.trim();
    if trimmed.starts_with("Ensure the ") {
        return TestRequestOutcome::NoSampleData {
            reason: sentence(format!(
                "GitLab builds a test {trigger} delivery from the project's own data and the project has no {} yet: \
                 make one (or run the scenario), then ask again",
                sample_needs(trigger).trim_start_matches("a ").trim_start_matches("an ")
            )),
        };
    }
    if trimmed == "Testing not available for this hook" {
        return TestRequestOutcome::NotTestable;
    }
    if trimmed.starts_with("Error while parsing rendered custom webhook template") {
        return TestRequestOutcome::NotAvailable {
            reason: Some(sentence(
                "GitLab could not render the hook's custom webhook template; golive needs GitLab's own payload: \
                 clear the hook's custom template"
                    .to_owned(),
            )),
        };
    }
    if trimmed == "Silent mode enabled" || trimmed.ends_with("are allowed in silent mode") {
        return TestRequestOutcome::NotAvailable {
            reason: Some(sentence("GitLab is in silent mode and sends no webhook deliveries".to_owned())),
        };
    }
    if trimmed == "Recursive webhook blocked" {
        return TestRequestOutcome::NotAvailable {
            reason: Some(sentence("GitLab blocked the delivery as a recursive webhook".to_owned())),
        };
    }
    if let Some(outcome) = golive_s_own_answer(trimmed) {
        return outcome;
    }
    client_error(trimmed)
}

/// golive's receiver answered: its problem document names why.
fn golive_s_own_answer(message: &str) -> Option<TestRequestOutcome> {
    let problem: Value = serde_json::from_str(message).ok()?;
    let kind = ErrorKind::from_problem_type(problem.get("type")?.as_str()?)?;
    let detail = problem.get("detail").and_then(Value::as_str).unwrap_or("");
    let refused = |reason: &str| failed(DeliveryFailureCause::RefusedByGolive, reason.to_owned());
    Some(match kind {
        // A credential refusal is counted by golive's receiver when it happens
        // (`Engine::record_refused_delivery`): the check run holds this answer to that count.
        ErrorKind::WebhookRefused => {
            let refusal = [
                Refusal::NoCredentials,
                Refusal::MissingToken,
                Refusal::WrongToken,
                Refusal::MissingSignature,
                Refusal::WrongSignature,
                Refusal::StaleTimestamp,
            ]
            .into_iter()
            .find(|r| r.to_string() == detail);
            match refusal {
                Some(Refusal::WrongToken) => refused(
                    "the hook holds another secret token than the one golive issued: paste the current secret \
                     token into the hook in GitLab (or rotate it and paste the new one)",
                ),
                Some(Refusal::MissingToken) => {
                    refused("the hook has no secret token: paste the secret token golive issued into the hook")
                }
                Some(Refusal::MissingSignature) => refused(
                    "golive was told to require signed deliveries, and this GitLab does not sign them: issue the \
                     webhook credentials again without signing",
                ),
                Some(Refusal::WrongSignature) => refused(
                    "the delivery's signature does not match the signing key golive issued: set the current \
                     signing key on the hook",
                ),
                Some(Refusal::StaleTimestamp) => refused(
                    "the delivery's signature timestamp is more than 5 minutes off golive's clock: check the \
                     clocks of GitLab and golive",
                ),
                Some(Refusal::NoCredentials) => {
                    refused("golive has no webhook credentials issued for this integration")
                }
                None => refused("golive refused the delivery's credentials"),
            }
        }
        ErrorKind::MalformedDelivery => refused(
            "golive could not read GitLab's delivery as GitLab's payload (a custom webhook template on the hook?)",
        ),
        ErrorKind::NotFound => refused("the hook's URL names no integration golive knows: use the issued webhook URL"),
        ErrorKind::PayloadTooLarge => refused("the delivery was larger than golive accepts"),
        _ => refused("golive's receiver answered with an error; see golive's log for the delivery"),
    })
}

/// Whether `outcome` says golive refused the delivery's credentials (a refusal golive's receiver
/// counts), as opposed to refusing its body or its URL.
pub fn is_credential_refusal(outcome: &TestRequestOutcome) -> bool {
    let TestRequestOutcome::DeliveryFailed { cause: DeliveryFailureCause::RefusedByGolive, reason } = outcome else {
        return false;
    };
    let reason = reason.as_str();
    ["secret token", "signed deliveries", "signature", "credentials"].iter().any(|marker| reason.contains(marker))
}

/// An answer shaped like golive's credential refusal that golive's receiver did not count: the
/// hook's URL reaches some other server.
pub fn refusal_from_elsewhere() -> TestRequestOutcome {
    failed(
        DeliveryFailureCause::Connection,
        "an answer shaped like golive's refusal came from a server that is not this golive (another golive, \
         or a copy of its answer): check that the hook's URL is the webhook URL this golive issued"
            .to_owned(),
    )
}

/// The HTTP client's error, as GitLab's `WebHookService` gives it (`e.to_s`).
fn client_error(message: &str) -> TestRequestOutcome {
    let lower = message.to_lowercase();
    let connection = |reason: &str| failed(DeliveryFailureCause::Connection, reason.to_owned());
    // GitLab resolves the host itself (DNS-rebinding protection) and words a failure as a
    // blocked URL: `URL is blocked: Host cannot be resolved or invalid`, `… execution expired`.
    if lower.starts_with("url is blocked")
        && (lower.contains("cannot be resolved") || lower.contains("execution expired"))
    {
        return connection("GitLab could not resolve golive's host name: check GitLab's DNS for golive's public URL");
    }
    if lower.starts_with("url is blocked") {
        return connection(
            "GitLab's own outbound request rules block golive's address (Admin area > Settings > Network > \
             Outbound requests: allow it, or use golive's public address)",
        );
    }
    // TLS is named by OpenSSL's and Ruby's own markers only: the message also holds golive's
    // host name, which may well contain "ssl" or "tls".
    if lower.contains("ssl_connect")
        || lower.contains("certificate verify failed")
        || lower.contains("does not match the server certificate")
        || lower.contains("openssl::")
        || lower.contains("sslv3 alert")
        || lower.contains("tlsv1 alert")
        || lower.contains("wrong version number")
    {
        return failed(
            DeliveryFailureCause::Tls,
            "GitLab could not verify golive's certificate or complete the TLS handshake: give golive a \
             certificate GitLab trusts, or add its CA to GitLab's trusted certificates"
                .to_owned(),
        );
    }
    if lower.contains("timeout") || lower.contains("timed out") || lower.contains("execution expired") {
        return failed(
            DeliveryFailureCause::Timeout,
            "GitLab gave up waiting for golive (its webhook timeout, 10 s by default): a firewall or proxy \
             between GitLab and golive drops the delivery"
                .to_owned(),
        );
    }
    if lower.contains("getaddrinfo") || lower.contains("name or service not known") || lower.contains("nodename") {
        return connection("GitLab could not resolve golive's host name: check GitLab's DNS for golive's public URL");
    }
    if lower.contains("connection refused") {
        return connection(
            "the connection from GitLab to golive was refused: a firewall rejects it, or nothing listens at \
             golive's public address",
        );
    }
    if lower.contains("failed to open tcp connection")
        || lower.contains("no route to host")
        || lower.contains("network is unreachable")
        || lower.contains("connection reset")
        || lower.contains("end of file")
        || lower.contains("errno::")
    {
        return connection("GitLab could not reach golive: check the network path and firewall from GitLab to golive");
    }
    connection(
        "something other than golive's receiver answered the delivery (a proxy or load balancer in between?), \
         or GitLab failed in a way golive does not recognise: see the hook's Recent events in GitLab",
    )
}

/// GitLab's answer to a test request, any status.
pub fn classify_answer(
    status: u16,
    body: &Value,
    retry_after: Option<&str>,
    trigger: Trigger,
    now: DateTime<Utc>,
) -> Option<TestRequestOutcome> {
    Some(match status {
        200..=299 => TestRequestOutcome::Delivered,
        422 => classify_unprocessable(body.get("message").and_then(Value::as_str).unwrap_or(""), trigger),
        // Grape refuses a trigger this GitLab does not know: it cannot test it.
        400 => TestRequestOutcome::NotTestable,
        404 | 405 => TestRequestOutcome::NotAvailable { reason: None },
        429 => {
            let seconds = super::checks::retry_after_seconds(retry_after);
            TestRequestOutcome::RateLimited { retry_at: now + chrono::Duration::seconds(seconds as i64) }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cause(outcome: &TestRequestOutcome) -> Option<DeliveryFailureCause> {
        match outcome {
            TestRequestOutcome::DeliveryFailed { cause, .. } => Some(*cause),
            _ => None,
        }
    }

    #[test]
    fn each_message_of_gitlab_s_code_gets_its_own_outcome() {
        use DeliveryFailureCause::*;
        // Messages as GitLab's code and Ruby's HTTP client write them.
        let cases: [(&str, &str); 17] = [
            ("Failed to open TCP connection to golive.ssl-gw.corp:443 (Connection refused - connect(2) for \"golive.ssl-gw.corp\" port 443)", "connection"),
            ("Failed to open TCP connection to tls.example:443 (execution expired)", "timeout"),
            ("URL is blocked: Host cannot be resolved or invalid", "connection"),
            ("Request timed out after reading headers for 20.001 seconds", "timeout"),
            ("only get, head, options, and trace methods are allowed in silent mode", "not_available"),
            ("Net::ReadTimeout with #<TCPSocket:(closed)>", "timeout"),
            ("Failed to open TCP connection to golive.example:443 (execution expired)", "timeout"),
            ("Request timed out after 10.0 seconds", "timeout"),
            (
                "Failed to open TCP connection to golive.example:443 (Connection refused - connect(2) for \"golive.example\" port 443)",
                "connection",
            ),
            (
                "Failed to open TCP connection to nohost.example:443 (getaddrinfo: Name or service not known)",
                "connection",
            ),
            ("URL is blocked: Requests to the local network are not allowed", "connection"),
            (
                "SSL_connect returned=1 errno=0 peeraddr=10.0.0.5:443 state=error: certificate verify failed (self-signed certificate in certificate chain)",
                "tls",
            ),
            ("hostname \"golive.example\" does not match the server certificate", "tls"),
            ("Ensure the project has merge requests.", "no_sample_data"),
            ("Ensure the project has at least one commit.", "no_sample_data"),
            ("Testing not available for this hook", "not_testable"),
            ("Silent mode enabled", "not_available"),
        ];
        for (message, expected) in cases {
            let outcome = classify_unprocessable(message, Trigger::MergeRequests);
            let word = cause(&outcome).map(|c| c.as_str()).unwrap_or(outcome.word());
            assert_eq!(word, expected, "{message}");
            assert!(!outcome.describe().contains("golive.example"), "GitLab's words are not copied: {outcome:?}");
        }
        assert_eq!(cause(&classify_unprocessable("", Trigger::Push)), Some(Connection));
        assert_eq!(cause(&classify_unprocessable("<html>502 Bad Gateway</html>", Trigger::Push)), Some(Connection));
    }

    #[test]
    fn golive_s_own_refusal_is_recognised_and_named() {
        let problem = |detail: String| {
            json!({"type": "webhook-refused", "title": "Delivery refused", "status": 401, "detail": detail}).to_string()
        };
        let wrong = classify_unprocessable(&problem(Refusal::WrongToken.to_string()), Trigger::Push);
        assert_eq!(cause(&wrong), Some(DeliveryFailureCause::RefusedByGolive));
        assert!(wrong.describe().contains("another secret token"), "{}", wrong.describe());
        let unsigned = classify_unprocessable(&problem(Refusal::MissingSignature.to_string()), Trigger::Push);
        assert!(unsigned.describe().contains("does not sign"), "{}", unsigned.describe());
        let forged = classify_unprocessable(&problem("Visit evil.example".into()), Trigger::Push);
        assert!(!forged.describe().contains("evil"), "{}", forged.describe());
        // Credential refusals are the ones golive's receiver counts; the check run holds them to
        // that count.
        assert!(is_credential_refusal(&wrong) && is_credential_refusal(&unsigned) && is_credential_refusal(&forged));
        let malformed = json!({"type": "malformed-delivery", "title": "Bad request", "status": 400, "detail": "x"});
        assert!(!is_credential_refusal(&classify_unprocessable(&malformed.to_string(), Trigger::Push)));
        assert!(!is_credential_refusal(&classify_unprocessable("Net::ReadTimeout", Trigger::Push)));
        assert!(refusal_from_elsewhere().describe().contains("not this golive"));
    }

    #[test]
    fn statuses_other_than_422_are_read_as_gitlab_gives_them() {
        let now = Utc::now();
        let at = |status| classify_answer(status, &json!({}), Some("30"), Trigger::Push, now).map(|o| o.word());
        assert_eq!(at(201), Some("delivered"));
        assert_eq!(at(400), Some("not_testable"));
        assert_eq!(at(404), Some("not_available"));
        assert_eq!(at(429), Some("rate_limited"));
        assert_eq!(at(500), None);
    }
}
