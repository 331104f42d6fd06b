//! TLS: a self-signed server fails verification with error kind `tls`, and succeeds
//! with `insecure` per call or per target.

use crate::support::script;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use volley::engine::ExitCode;

fn start_tls_server() -> (String, tokio::runtime::Runtime) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(vec![der], key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut buf = vec![0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (format!("https://localhost:{port}"), rt)
}

#[test]
fn self_signed_certificates_need_insecure() {
    let (base, _rt) = start_tls_server();
    let (_d, path) = script(
        r#"
        let base = env("TLS_URL");
        let strict = http::get(`${base}/a`);
        expect(strict.status, "== 0", "verification fails");
        assert(strict.error == "tls", `error kind is tls (got ${strict.error}: ${strict.error_message})`);
        let per_call = http::get(`${base}/b`, #{ insecure: true });
        expect(per_call.status, "== 200", "insecure per call");
        http::target(base, #{ insecure: true });
        let per_target = http::get(`${base}/c`);
        expect(per_target.status, "== 200", "insecure per target");
        "#,
    );
    let r = crate::support::run_with(&path, &[("TLS_URL", base.as_str())], 1.0);
    assert_eq!(r.exit, ExitCode::Passed, "{}", volley::report::summary::render(&r));
}
