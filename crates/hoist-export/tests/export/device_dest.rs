//! File outputs whose `dest` is no regular file: a character device (`/dev/null`) or a
//! pipe (what `/dev/stdout` is under a shell pipeline). They take every byte, and the
//! export succeeds: there is nothing to fsync on them (it fails with EINVAL).

use std::io::Read as _;
use std::os::fd::AsRawFd as _;

use crate::export::Fixture;

/// Each file output, and a name its tar must hold.
const FILE_OUTPUTS: [(&str, &str); 3] = [
    ("type=tar", "bin/hello"),
    ("type=oci", "oci-layout"),
    ("type=docker", "manifest.json"),
];

#[tokio::test]
async fn file_outputs_to_dev_null_succeed() {
    let fx = Fixture::new();
    let images = fx.images(&["linux/amd64"]);
    for (output, _) in FILE_OUTPUTS {
        fx.export(&images, &format!("{output},dest=/dev/null"))
            .await;
    }
}

#[tokio::test]
async fn file_outputs_to_a_pipe_deliver_the_whole_tar() {
    let fx = Fixture::new();
    let images = fx.images(&["linux/amd64"]);
    for (output, expected) in FILE_OUTPUTS {
        let (mut reader, writer) = std::io::pipe().unwrap();
        let drain = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            reader.read_to_end(&mut bytes).unwrap();
            bytes
        });
        // The pipe by path, as `/dev/stdout` names the shell's pipe.
        let dest = format!("/proc/self/fd/{}", writer.as_raw_fd());
        fx.export(&images, &format!("{output},dest={dest}")).await;
        drop(writer);
        let bytes = drain.join().unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().any(|n| n == expected),
            "{output}: {expected} missing from {names:?}"
        );
    }
}
