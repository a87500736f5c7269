//! `coldchain import rpc --url https://…` through a TLS server whose
//! certificate comes from a test CA (made here with rcgen), trusted through
//! `SSL_CERT_FILE`; the server replays what a node answers (a coldchain
//! server over a W1 chain behind a TLS-terminating proxy that records the
//! requests it forwards). Checks `--header`, `--rps`, and that a server
//! the roots do not vouch for is refused with a clear error.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::Served;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::{
    path::Path,
    process::{Command, Output},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::TlsAcceptor;

/// A test CA's PEM, and a TLS config for `localhost` signed by it.
fn test_ca() -> (String, rustls::ServerConfig) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "coldchain test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    #[allow(deprecated)] // ring: no post-quantum key exchange, fine for a test
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let chain: Vec<CertificateDer<'static>> = vec![leaf_cert.der().clone()];
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (ca_cert.pem(), config)
}

/// Requests seen by the proxy: when each started, and its head.
type Seen = Arc<Mutex<Vec<(Instant, String)>>>;

/// A TLS proxy on 127.0.0.1 in front of `upstream`; returns its port.
async fn tls_proxy(config: rustls::ServerConfig, upstream: String, seen: Seen) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let (acceptor, upstream, seen) = (acceptor.clone(), upstream.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(sock).await else { return };
                let Ok(up) = TcpStream::connect(&upstream).await else { return };
                let (mut tls_r, mut tls_w) = tokio::io::split(tls);
                let (mut up_r, mut up_w) = up.into_split();
                let to_node = async {
                    let mut buf = vec![0u8; 64 << 10];
                    loop {
                        let n = match tls_r.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let text = String::from_utf8_lossy(&buf[..n]);
                        if text.starts_with("POST ") {
                            let head = text.split("\r\n\r\n").next().unwrap_or("").to_owned();
                            seen.lock().unwrap().push((Instant::now(), head));
                        }
                        if up_w.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = up_w.shutdown().await;
                };
                let to_client = async {
                    let _ = tokio::io::copy(&mut up_r, &mut tls_w).await;
                    let _ = tls_w.shutdown().await;
                };
                tokio::join!(to_node, to_client);
            });
        }
    });
    port
}

fn import(url: &str, store: &Path, ca: Option<&Path>, extra: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coldchain"));
    cmd.args(["import", "rpc", "--url", url, "--store", store.to_str().unwrap()]).args(extra);
    cmd.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
    if let Some(ca) = ca {
        cmd.env("SSL_CERT_FILE", ca);
    }
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_over_https_with_a_custom_ca_headers_and_a_rate_limit() {
    let dir = tempfile::tempdir().unwrap();
    let node = Served::start(&["--store", "mem", "--dev", "--dev-blocks", "60"]);
    let (ca_pem, config) = test_ca();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let seen = Seen::default();
    let port = tls_proxy(config, node.addr.clone(), seen.clone()).await;
    let url = format!("https://localhost:{port}");

    // Without the CA the server is not trusted: a clear error, nothing written.
    let store = dir.path().join("store");
    let out = tokio::task::spawn_blocking({
        let (url, store) = (url.clone(), store.clone());
        move || import(&url, &store, None, &["--retries", "0"])
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("cannot connect to {url}")), "{stderr}");
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");

    // With SSL_CERT_FILE naming the test CA, at most 5 requests a second.
    seen.lock().unwrap().clear();
    let out = tokio::task::spawn_blocking({
        let (url, store, ca) = (url.clone(), store.clone(), ca.clone());
        move || {
            let extra = ["--rps", "5", "--batch", "16", "--header", "Authorization: Bearer k3y"];
            import(&url, &store, Some(&ca), &extra)
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("import done: 60 blocks"), "{stderr}");
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() >= 5, "{seen:?}");
    for (_, head) in &seen {
        assert!(head.to_lowercase().contains("authorization: bearer k3y"), "{head}");
    }
    // Request starts are at least 200 ms apart (with slack for the proxy,
    // which sees them a little after the client sends them).
    let first = seen.iter().map(|(t, _)| *t).min().unwrap();
    let last = seen.iter().map(|(t, _)| *t).max().unwrap();
    let least = Duration::from_millis(150) * (seen.len() as u32 - 1);
    assert!(last - first >= least, "{} requests in {:?}", seen.len(), last - first);
}
