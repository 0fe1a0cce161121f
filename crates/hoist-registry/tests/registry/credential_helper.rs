//! The `docker-credential-<helper>` protocol, with a helper script put on `PATH`. Helpers
//! are found through the process's `PATH`, which no test may change while others run in
//! this binary, so the test re-executes the binary to run itself alone with that `PATH`
//! (the child knows it is one by `HOIST_CREDENTIAL_HELPER_DIR`, the script's directory).

use std::path::{Path, PathBuf};
use std::process::Command;

use hoist_registry::credentials::{helper_erase, helper_get, helper_store};
use hoist_registry::{Auth, Credentials};

/// Set in the child: the directory holding the helper script and its log.
const CHILD_DIR: &str = "HOIST_CREDENTIAL_HELPER_DIR";

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
    let Some(dir) = std::env::var_os(CHILD_DIR).map(PathBuf::from) else {
        run_in_a_child_with_the_helper_on_path();
        return;
    };
    let log = dir.join("log");

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
        let config = dir.join("config.json");
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
        let missing = Credentials::from_docker_config_file(dir.join("missing.json"));
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

/// Writes the helper into a temp dir and runs this test again in a child process whose
/// `PATH` starts with that dir.
fn run_in_a_child_with_the_helper_on_path() {
    let dir = tempfile::tempdir().unwrap();
    write_helper(dir.path(), &dir.path().join("log"));
    let old = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![dir.path().to_owned()];
    paths.extend(std::env::split_paths(&old));
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "credential_helper::helper_protocol_over_stdin_and_stdout",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PATH", std::env::join_paths(paths).unwrap())
        .env(CHILD_DIR, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the child failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "the child ran no test:\n{stdout}"
    );
}
