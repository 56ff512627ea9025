//! PostgreSQL for the tests: the server at 127.0.0.1:5432 (database `test`, trust auth) or
//! `GOLIVE_TEST_POSTGRES_URL`. Each test works in a schema of its own, dropped at the end.
//! Without a server the PostgreSQL tests print SKIPPED loudly; with CI=true they fail instead.

use std::str::FromStr;

pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn base_url() -> String {
    std::env::var("GOLIVE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

async fn client(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let config = tokio_postgres::Config::from_str(url)?;
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The base URL when a server answers; otherwise says SKIPPED (or fails under CI=true).
pub async fn available(test: &str) -> Option<String> {
    let url = base_url();
    match tokio::time::timeout(std::time::Duration::from_secs(5), client(&url)).await {
        Ok(Ok(_)) => Some(url),
        outcome => {
            let why = match outcome {
                Ok(Err(error)) => error.to_string(),
                _ => "no answer within 5 s".to_owned(),
            };
            let message = format!(
                "PostgreSQL test {test} SKIPPED: no server at {url} ({why}); start one or set GOLIVE_TEST_POSTGRES_URL"
            );
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{message}; CI=true requires the PostgreSQL tests to run");
            }
            eprintln!("\n{}\n!!! {message}\n{}\n", "!".repeat(100), "!".repeat(100));
            None
        }
    }
}

/// A new, empty schema; returns the URL that works in it.
pub async fn fresh_schema(base: &str) -> (String, String) {
    let schema = format!("golive_t_{}", uuid::Uuid::new_v4().simple());
    client(base).await.unwrap().batch_execute(&format!("CREATE SCHEMA {schema}")).await.unwrap();
    (schema.clone(), in_schema(base, &schema))
}

pub fn in_schema(base: &str, schema: &str) -> String {
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options=-csearch_path%3D{schema}")
}

pub async fn drop_schema(base: &str, schema: &str) {
    if let Ok(client) = client(base).await {
        let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await;
    }
}

/// A direct connection for a test's own checks.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    client(url).await.unwrap()
}
