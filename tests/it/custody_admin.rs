//! Custody, the admin's side, over real HTTP on loopback: the sign-in `next` only ever leads
//! to golive's own pages.

use reqwest::redirect::Policy;
use reqwest::StatusCode;

use crate::http::{spawn_app, TestApp};

/// A cookie-less HTTP client that does not follow redirects, so each answer can be checked.
fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

/// Whether `location` is one of golive's own dashboard paths.
fn own_page(location: &str) -> bool {
    let path = location.split('?').next().unwrap();
    let known = matches!(path, "/" | "/audit" | "/insights")
        || path.strip_prefix("/integrations/").is_some_and(|id| uuid::Uuid::try_parse(id).is_ok());
    known && location.chars().all(|c| c.is_ascii_graphic() && c != '\\')
}

/// Signs in with a raw form body (so control characters reach the server as they are) and
/// returns the `Location` answered.
async fn sign_in_location(app: &TestApp, body: String) -> String {
    let response = client()
        .post(app.url("/signin"))
        .header("origin", &app.address)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    response.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn sign_in_next_leads_only_to_golives_own_pages() {
    let app = spawn_app().await;
    let long = format!("/audit?actor={}", "a".repeat(5000));
    let nasty: Vec<String> = [
        "//evil.example",
        "//evil.example/",
        "/\\evil.example",
        "/\t/evil.example",
        "/%09/evil.example",
        "https://evil.example",
        "http:evil.example",
        "/%2F%2Fevil.example",
        "/%2f%2fevil.example",
        "%2F%2Fevil.example",
        "javascript:alert(1)",
        "/audit\r\nLocation: https://evil.example",
        "/audit\nSet-Cookie: x=1",
        "/\u{3000}/evil.example",
        "/integrations/../../evil",
        "/integrations/not-a-uuid",
        "/integrations/00000000-0000-0000-0000-000000000000/../../evil",
        "/audit/../..//evil.example",
        "/.//evil.example",
        "/audit#//evil.example",
        "/audit?x=\\\\evil",
        "/audit?next=//evil.example",
        "/ /evil.example",
        "",
        "evil.example",
        long.as_str(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for next in &nasty {
        // Once form-encoded as a browser would, once with the value's bytes raw in the body.
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", &app.viewer)
            .append_pair("next", next)
            .finish();
        let location = sign_in_location(&app, encoded).await;
        assert!(own_page(&location), "{next:?} led to {location:?}");
        assert!(!location.contains("evil"), "{next:?} led to {location:?}");
        let raw = format!("token={}&next={}", app.viewer, next.replace('&', "%26"));
        let location = sign_in_location(&app, raw).await;
        assert!(own_page(&location), "raw {next:?} led to {location:?}");
        assert!(!location.contains("evil"), "raw {next:?} led to {location:?}");
        // The sign-in page carries the same choice in its hidden field.
        let query = url::form_urlencoded::Serializer::new(String::new()).append_pair("next", next).finish();
        let html = client().get(app.url(&format!("/signin?{query}"))).send().await.unwrap().text().await.unwrap();
        assert!(!html.contains("evil"), "the sign-in page keeps {next:?}");
    }
    // golive's own pages, with their queries, are still followed.
    let id = uuid::Uuid::new_v4().to_string();
    let integration = format!("/integrations/{id}");
    for good in ["/", "/audit", "/audit?actor=rep-1&after=3", "/insights", integration.as_str()] {
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", &app.viewer)
            .append_pair("next", good)
            .finish();
        assert_eq!(sign_in_location(&app, encoded).await, good);
    }
}

