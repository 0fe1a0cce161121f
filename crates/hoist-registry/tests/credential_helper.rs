//! The `docker-credential-<helper>` protocol, with a helper script put on `PATH`. Its own
//! test binary (one test): `PATH` is changed for the whole process before any thread runs.

use std::path::Path;

use hoist_registry::credentials::{helper_erase, helper_get, helper_store};
use hoist_registry::{Auth, Credentials};

fn write_helper(dir: &Path, log: &Path) {
    let script = format!(
        r#"#!/bin/sh
input=$(cat)
echo "$1 $input" >> {log}
case "$1:$input" in
  get:reg.example) echo '{{"ServerURL":"reg.example","Username":"alice","Secret":"pw"}}' ;;
  get:tok.example) echo '{{"ServerURL":"tok.example","Username":"<token>","Secret":"refresh"}}' ;;
  get:broken.example) echo 'boom' >&2; exit 3 ;;
  get:*) echo 'credentials not found in native keychain'; exit 1 ;;
esac
"#,
        log = log.display()
    );
    let bin = dir.join("docker-credential-hoisttest");
    std::fs::write(&bin, script).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn helper_protocol_over_stdin_and_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    write_helper(dir.path(), &log);
    let old = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![dir.path().to_owned()];
    paths.extend(std::env::split_paths(&old));
    // The only test in this binary, and no thread runs yet.
    std::env::set_var("PATH", std::env::join_paths(paths).unwrap());

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        assert_eq!(
            helper_get("hoisttest", "reg.example").await.unwrap(),
            Some(Auth::Basic {
                username: "alice".into(),
                password: "pw".into()
            })
        );
        assert_eq!(
            helper_get("hoisttest", "tok.example").await.unwrap(),
            Some(Auth::IdentityToken("refresh".into()))
        );
        assert_eq!(
            helper_get("hoisttest", "other.example").await.unwrap(),
            None
        );
        let err = helper_get("hoisttest", "broken.example").await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("docker-credential-hoisttest")
                && text.contains("broken.example")
                && text.contains("boom"),
            "{text}"
        );
        helper_store("hoisttest", "docker.io", "bob", "s")
            .await
            .unwrap();
        helper_erase("hoisttest", "docker.io").await.unwrap();

        // Through the docker config: credHelpers wins for its host, credsStore for the rest.
        let config = dir.path().join("config.json");
        std::fs::write(
            &config,
            r#"{"credsStore":"hoisttest","auths":{"inline.example":{"auth":"dTpw"}}}"#,
        )
        .unwrap();
        let creds = Credentials::from_docker_config_file(&config);
        assert_eq!(
            creds.lookup("reg.example").await.unwrap(),
            Some(Auth::Basic {
                username: "alice".into(),
                password: "pw".into()
            })
        );
        let missing = Credentials::from_docker_config_file(dir.path().join("missing.json"));
        assert_eq!(missing.lookup("reg.example").await.unwrap(), None);
    });
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("get reg.example"), "{logged}");
    assert!(
        logged.contains(
            r#"store {"ServerURL":"https://index.docker.io/v1/","Username":"bob","Secret":"s"}"#
        ),
        "{logged}"
    );
    assert!(
        logged.contains("erase https://index.docker.io/v1/"),
        "{logged}"
    );
}
