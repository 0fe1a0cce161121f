//! Regressions of issue 15 that need RUN, checked through `hoist build -o type=local` on the
//! busybox base image: what a RUN step's environment holds.
//!
//! Needs root, `docker-registry` and the busybox .debs (see `build_env`).

use std::path::PathBuf;

use crate::build_env::BuildEnv;

/// An environment plus a build context for one test.
struct Case {
    env: BuildEnv,
    ctx: PathBuf,
}

impl Case {
    fn new() -> Option<Case> {
        let env = BuildEnv::new()?;
        let ctx = env.fresh_dir("ctx");
        Some(Case { env, ctx })
    }

    fn file(&self, name: &str, bytes: &[u8]) {
        let path = self.ctx.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// `hoist build -o type=local,dest=OUT ARGS CTX`, failing the test when the build fails;
    /// the output directory.
    fn build_local(&self, args: &[&str]) -> PathBuf {
        let dest = self.env.fresh_dir("out");
        let output = format!("type=local,dest={}", dest.display());
        let ctx = self.ctx.display().to_string();
        let mut all = vec!["build", "--progress=plain", "-o", &output];
        all.extend_from_slice(args);
        all.push(&ctx);
        let out = self.env.hoist(&all);
        assert!(
            out.status.success(),
            "hoist build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dest
    }
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn run_environment_has_home_from_passwd() {
    let Some(case) = Case::new() else { return };
    case.file(
        "Dockerfile",
        b"FROM busybox\n\
          RUN echo \"$HOME\" > /home-root\n\
          USER nobody\n\
          WORKDIR /n\n\
          RUN echo \"$HOME\" > /n/home-nobody\n\
          USER 4242\n\
          WORKDIR /u\n\
          RUN echo \"$HOME\" > /u/home-4242\n\
          USER root\n\
          ENV HOME=/custom\n\
          RUN echo \"$HOME\" > /home-env\n",
    );
    let out = case.build_local(&[]);
    assert_eq!(read(out.join("home-root")), "/root\n");
    // The test images give nobody the home `/home`, as Docker's busybox does.
    assert_eq!(read(out.join("n/home-nobody")), "/home\n");
    // No passwd entry for the uid: `/`.
    assert_eq!(read(out.join("u/home-4242")), "/\n");
    // An ENV HOME wins.
    assert_eq!(read(out.join("home-env")), "/custom\n");
}
