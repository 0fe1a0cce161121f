mod support;

use support::*;

#[test]
fn dump() {
    let cases = [
        "FROM busybox AS target\nCOPY --from=build / /out\n\nFROM alpine AS build\nCOPY /Dockerfile /d2\n\nFROM target\n",
        "ARG foo=bar\n",
        "FROM scratch\nCOPY --from=$FOO . .\n",
        "FROM scratch\nARG FOO\nARG BAR=${FOO:?\"foo missing\"}\n",
        "FROM busybox AS stage0\nCOPY --from=stage0 f1 /sub/\n",
        "FROM busybox AS stage0\nCOPY --from=stage2 f1 /sub/\nFROM busybox AS stage1\nCOPY --from=stage0 f2 /sub/\nFROM busybox AS stage2\nCOPY --from=stage1 f2 /sub/\n",
        "FROM Busy:box\n",
    ];
    for c in cases {
        match build(c, &options()) {
            Ok(_) => println!("OK"),
            Err(e) => println!("{e} @ {:?}", e.span()),
        }
    }
    panic!();
}
