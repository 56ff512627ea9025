//! PostgreSQL over TLS: a throwaway cluster on its own port, started by the test with `ssl=on`
//! and a certificate made here, and every `sslmode` against it — what must connect (and write),
//! and what must refuse with a clear error. The cluster runs as the `postgres` user when the
//! test runs as root (initdb and postgres refuse root). Without PostgreSQL's server binaries
//! the test prints SKIPPED, and fails under CI=true.

use std::path::{Path, PathBuf};
use std::process::Command;

use golive::store::{EventStore, ExpectedVersion, PgStore, PgStoreOptions};

/// The newest `initdb` on this machine (Debian keeps them per version), or on PATH.
fn server_binaries() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    found.sort_by_key(|bin| {
        bin.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).and_then(|n| n.parse::<u32>().ok())
    });
    found.pop().or_else(|| {
        let output = Command::new("sh").args(["-c", "command -v initdb"]).output().ok()?;
        let path = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
        Some(path.parent()?.to_owned()).filter(|bin| bin.join("pg_ctl").exists())
    })
}

fn running_as_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// A PostgreSQL binary, as the `postgres` user when this test runs as root.
fn as_postgres(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn give_to_postgres(path: &Path) {
    if running_as_root() {
        let output = Command::new("id").args(["-u", "postgres"]).output().unwrap();
        let uid: u32 = String::from_utf8(output.stdout).unwrap().trim().parse().expect("a postgres user");
        std::os::unix::fs::chown(path, Some(uid), None).unwrap();
    }
}

#[track_caller]
fn run(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A throwaway cluster; stopped (immediately) when dropped.
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn create(bin: &Path) -> Cluster {
        let dir = tempfile::Builder::new().prefix("golive-pg-tls").tempdir().unwrap();
        give_to_postgres(dir.path());
        let data = dir.path().join("data");
        run(as_postgres(&bin.join("initdb")).arg("-D").arg(&data).args(["-A", "trust", "-U", "postgres"]));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Cluster { bin: bin.to_owned(), data, port, _dir: dir }
    }

    fn start(&self, ssl: bool) {
        let mut options = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.data.display());
        if ssl {
            options.push_str(" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key");
        }
        run(as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-o", &options, "-l"])
            .arg(self.data.join("log"))
            .args(["-w", "start"]));
    }

    fn stop(&self) {
        run(as_postgres(&self.bin.join("pg_ctl")).arg("-D").arg(&self.data).args(["-m", "immediate", "-w", "stop"]));
    }

    /// Writes a file into the cluster's directory, owned by the server's user, mode 0600.
    fn install(&self, name: &str, contents: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.data.join(name);
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        give_to_postgres(&path);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ =
            as_postgres(&self.bin.join("pg_ctl")).arg("-D").arg(&self.data).args(["-m", "immediate", "stop"]).output();
    }
}

/// A CA and a server certificate it signed for `localhost` only.
struct Certificates {
    ca_pem: String,
    server_pem: String,
    server_key_pem: String,
    other_ca_pem: String,
}

fn certificate_authority(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    (params.self_signed(&key).unwrap(), key)
}

fn certificates() -> Certificates {
    let (ca, ca_key) = certificate_authority("golive test CA");
    let (other_ca, _) = certificate_authority("someone else's CA");
    let server_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    let server = params.signed_by(&server_key, &ca, &ca_key).unwrap();
    Certificates {
        ca_pem: ca.pem(),
        server_pem: server.pem(),
        server_key_pem: server_key.serialize_pem(),
        other_ca_pem: other_ca.pem(),
    }
}

async fn connect(url: &str) -> Result<std::sync::Arc<PgStore>, String> {
    let options = PgStoreOptions { pool_size: 2, ..Default::default() };
    match tokio::time::timeout(std::time::Duration::from_secs(20), PgStore::connect(url, options)).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err("no answer within 20 s".into()),
    }
}

/// Connects, writes an event, reads it back; returns whether the session is encrypted.
async fn connects_and_writes(url: &str, what: &str) -> bool {
    let store = connect(url).await.unwrap_or_else(|e| panic!("{what}: {e}"));
    let stream = uuid::Uuid::new_v4();
    let request = crate::store_conformance::append(stream, ExpectedVersion::Exact(0), &[what]);
    store.append(request).await.unwrap_or_else(|e| panic!("{what}: append: {e}"));
    assert_eq!(store.stream_version(stream).await.unwrap(), 1, "{what}");
    let client = store.pool().get().await.unwrap();
    let encrypted: bool =
        client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0);
    drop(client);
    store.close().await.unwrap();
    encrypted
}

#[track_caller]
fn refused(outcome: Result<std::sync::Arc<PgStore>, String>, what: &str, expected: &[&str]) -> String {
    let error = match outcome {
        Ok(_) => panic!("{what}: connected, but must refuse"),
        Err(error) => error,
    };
    for part in expected {
        assert!(error.contains(part), "{what}: the error {error:?} should say {part:?}");
    }
    eprintln!("{what}: refused: {error}");
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_connects_only_as_the_sslmode_says() {
    let Some(bin) = server_binaries() else {
        let message = "PostgreSQL TLS test SKIPPED: no PostgreSQL server binaries (initdb, pg_ctl) on this machine";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{message}; CI=true requires it to run");
        }
        eprintln!("\n{}\n!!! {message}\n{}\n", "!".repeat(100), "!".repeat(100));
        return;
    };
    let cluster = Cluster::create(&bin);
    let certificates = certificates();
    cluster.install("server.crt", &certificates.server_pem);
    cluster.install("server.key", &certificates.server_key_pem);
    let files = tempfile::tempdir().unwrap();
    let ca = files.path().join("ca.pem");
    let other_ca = files.path().join("other-ca.pem");
    std::fs::write(&ca, &certificates.ca_pem).unwrap();
    std::fs::write(&other_ca, &certificates.other_ca_pem).unwrap();
    let (ca, other_ca) = (ca.display().to_string(), other_ca.display().to_string());
    let port = cluster.port;
    // `localhost` for the certificate's name, always connecting to 127.0.0.1 (hostaddr).
    let by_name = |query: &str| format!("postgres://postgres@localhost:{port}/postgres?hostaddr=127.0.0.1&{query}");
    let by_address = |query: &str| format!("postgres://postgres@127.0.0.1:{port}/postgres?{query}");

    cluster.start(true);
    assert!(connects_and_writes(&by_address("sslmode=require"), "require").await, "require encrypts");
    assert!(connects_and_writes(&by_address(""), "the default (prefer)").await, "prefer encrypts when offered");
    let full = by_name(&format!("sslmode=verify-full&sslrootcert={ca}"));
    assert!(connects_and_writes(&full, "verify-full with the right CA").await);
    let chain_only = by_address(&format!("sslmode=verify-ca&sslrootcert={ca}"));
    assert!(connects_and_writes(&chain_only, "verify-ca, another name").await, "verify-ca skips the name");
    assert!(!connects_and_writes(&by_address("sslmode=disable"), "disable").await, "disable does not encrypt");

    refused(
        connect(&by_name(&format!("sslmode=verify-full&sslrootcert={other_ca}"))).await,
        "verify-full with a wrong CA",
        &["sslmode=verify-full", "invalid peer certificate", "UnknownIssuer"],
    );
    refused(
        connect(&by_address(&format!("sslmode=verify-full&sslrootcert={ca}"))).await,
        "verify-full with a wrong host name",
        &["sslmode=verify-full", "not valid for name", "127.0.0.1"],
    );
    refused(
        connect(&by_address(&format!("sslmode=verify-ca&sslrootcert={other_ca}"))).await,
        "verify-ca with a wrong CA",
        &["sslmode=verify-ca", "UnknownIssuer"],
    );
    refused(
        connect(&by_address(&format!("sslmode=require&sslrootcert={other_ca}"))).await,
        "require with a root certificate verifies the chain (as libpq)",
        &["UnknownIssuer"],
    );
    refused(connect(&by_name("sslmode=verify-full")).await, "verify-full without a root", &["sslrootcert"]);
    refused(
        connect(&by_name("sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")).await,
        "a missing CA file",
        &["/nonexistent/ca.pem"],
    );
    refused(connect(&by_name("sslmode=sometimes")).await, "an unknown sslmode", &["sslmode=sometimes"]);

    // The same cluster without TLS: require refuses; prefer and disable connect in clear.
    cluster.stop();
    cluster.start(false);
    refused(
        connect(&by_address("sslmode=require")).await,
        "require against a server without TLS",
        &["sslmode=require", "TLS"],
    );
    refused(
        connect(&by_name(&format!("sslmode=verify-full&sslrootcert={ca}"))).await,
        "verify-full against a server without TLS",
        &["TLS"],
    );
    assert!(!connects_and_writes(&by_address("sslmode=prefer"), "prefer without TLS").await);

    // The CLI checks sslmode before it connects anywhere.
    for (store, says) in [
        ("postgres://db.invalid/golive?sslmode=verify-full", "sslrootcert"),
        ("postgres://db.invalid/golive?sslmode=allow", "sslmode=allow"),
        ("postgres://db.invalid/golive?sslcert=client.pem", "client certificates"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_golive"))
            .env("GOLIVE_ALLOW_LOCAL_URLS", "true")
            .env_remove("GOLIVE_STORE")
            .args(["--as", "tls.tester", "--store", store, "--data-dir"])
            .arg(dir.path())
            .args(["token", "list"])
            .output()
            .unwrap();
        assert!(!output.status.success(), "{store}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{store}: {stderr}");
    }
}
