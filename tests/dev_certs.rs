//! `handler dev-certs`: the real binary's demo PKI, checked with the real `openssl`,
//! loaded by native-tls (as reqwest does) and used by the real `curl` through the front end.

#[path = "support/e2e.rs"]
mod e2e;

use e2e::*;
use mtls_handler::tools::dev_certs::FILES;
use std::path::Path;
use std::process::Command;

fn dev_certs(dir: &Path, force: bool) -> std::process::Output {
    let d = dir.to_str().unwrap();
    let mut args = vec!["dev-certs", "--out", d];
    if force {
        args.push("--force");
    }
    run_handler(&args, &[], None)
}

fn openssl(args: &[&str], dir: &Path) -> std::process::Output {
    run_bounded(
        Command::new("openssl").args(args).current_dir(dir),
        None,
        std::time::Duration::from_secs(30),
    )
}

fn snapshot(dir: &Path) -> Vec<Vec<u8>> {
    FILES
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect()
}

#[test]
fn client_server_and_outbound_certificates_verify_against_ca_pem_with_openssl() {
    let tmp = tempfile::tempdir().unwrap();
    let out = dev_certs(tmp.path(), false);
    assert!(out.status.success(), "{out:?}");
    for leaf in ["client.pem", "server.pem", "outbound.pem"] {
        let v = openssl(&["verify", "-CAfile", "ca.pem", leaf], tmp.path());
        assert!(v.status.success(), "{leaf}: {v:?}");
    }
    let v = openssl(
        &["verify", "-CAfile", "ca.pem", "untrusted.pem"],
        tmp.path(),
    );
    assert!(
        !v.status.success(),
        "the self-signed client must not verify"
    );
    let v = openssl(&["verify", "-CAfile", "ca.pem", "expired.pem"], tmp.path());
    assert!(!v.status.success(), "the expired client must not verify");
}

#[test]
fn the_certificates_carry_the_names_and_usages_the_demo_relies_on() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(dev_certs(tmp.path(), false).status.success());
    let read = |name: &str| {
        let pem = std::fs::read(tmp.path().join(name)).unwrap();
        let cert = openssl::x509::X509::from_pem(&pem).unwrap();
        mtls_handler::inbound::client_cert::describe(&cert.to_der().unwrap()).unwrap()
    };
    let client = read("client.pem");
    assert_eq!(client.common_names, vec!["api-client.contoso.com"]);
    assert_eq!(client.extended_key_usages, Some(vec!["clientAuth".into()]));
    assert_eq!(client.issuer, "CN=mtls-handler Dev Issuing CA");
    let server = read("server.pem");
    assert_eq!(server.dns_names, vec!["localhost"]);
    let text = openssl(
        &[
            "x509",
            "-in",
            "server.pem",
            "-noout",
            "-ext",
            "subjectAltName",
        ],
        tmp.path(),
    );
    assert!(String::from_utf8_lossy(&text.stdout).contains("IP Address:127.0.0.1"));
    let ca = std::fs::read(tmp.path().join("ca.pem")).unwrap();
    assert_eq!(openssl::x509::X509::stack_from_pem(&ca).unwrap().len(), 2);
}

#[test]
fn the_pkcs12_files_load_with_an_empty_password_in_openssl_and_native_tls() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(dev_certs(tmp.path(), false).status.success());
    for name in ["client.p12", "outbound.p12"] {
        let der = std::fs::read(tmp.path().join(name)).unwrap();
        let parsed = openssl::pkcs12::Pkcs12::from_der(&der)
            .unwrap()
            .parse2("")
            .unwrap();
        assert!(parsed.pkey.is_some() && parsed.cert.is_some(), "{name}");
        reqwest::Identity::from_pkcs12_der(&der, "")
            .unwrap_or_else(|e| panic!("{name} does not load in native-tls: {e}"));
    }
}

#[test]
fn private_files_are_readable_by_the_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().unwrap();
    assert!(dev_certs(tmp.path(), false).status.success());
    for name in ["client.key", "client.p12", "server.key", "outbound.p12"] {
        let mode = std::fs::metadata(tmp.path().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{name} has mode {mode:o}");
    }
}

#[test]
fn a_second_run_keeps_every_file_and_force_replaces_them() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(dev_certs(tmp.path(), false).status.success());
    let first = snapshot(tmp.path());
    let again = dev_certs(tmp.path(), false);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("kept the existing"));
    assert_eq!(snapshot(tmp.path()), first);
    let forced = dev_certs(tmp.path(), true);
    assert!(forced.status.success());
    let second = snapshot(tmp.path());
    for (i, name) in FILES.iter().enumerate() {
        assert_ne!(first[i], second[i], "{name} was not regenerated");
    }
}

#[test]
fn a_partial_set_is_refused_rather_than_mixed_with_new_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(dev_certs(tmp.path(), false).status.success());
    std::fs::remove_file(tmp.path().join("client.key")).unwrap();
    let ca_before = std::fs::read(tmp.path().join("ca.pem")).unwrap();
    let out = dev_certs(tmp.path(), false);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("client.key"));
    assert_eq!(std::fs::read(tmp.path().join("ca.pem")).unwrap(), ca_before);
    assert!(dev_certs(tmp.path(), true).status.success());
    assert!(tmp.path().join("client.key").exists());
}

#[test]
fn the_printed_settings_and_commands_name_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    let out = dev_certs(tmp.path(), false);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let d = tmp.path().display().to_string();
    for needle in [
        format!("CLIENT_CERT_CA_PATH={d}/ca.pem"),
        format!("OUTBOUND_CLIENT_CERT_PATH={d}/outbound.p12"),
        format!("--cert {d}/client.pem --key {d}/client.key"),
        format!("--cert-type P12 --cert {d}/client.p12:"),
    ] {
        assert!(text.contains(&needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn curl_presents_the_dev_client_p12_through_the_front_end_and_is_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(dev_certs(tmp.path(), false).status.success());
    let d = tmp.path();
    let ca = d.join("ca.pem");
    let (_handler, handler_port) = start_handler(&[("CLIENT_CERT_CA_PATH", ca.to_str().unwrap())]);
    let (_front, port) = start_front_end_with(
        &d.join("server.pem"),
        &d.join("server.key"),
        handler_port,
        "required",
    );
    let p12 = format!("{}:", d.join("client.p12").display());
    let out = run_bounded(
        Command::new("curl")
            .args(["-sS", "--max-time", "10", "--noproxy", "*", "--cacert"])
            .arg(&ca)
            .args(["--cert-type", "P12", "--cert", &p12])
            .arg(format!("https://localhost:{port}/api/cert-info")),
        None,
        std::time::Duration::from_secs(30),
    );
    assert!(out.status.success(), "{out:?}");
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["commonName"], "api-client.contoso.com");
}
