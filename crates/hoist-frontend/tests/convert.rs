mod support;

use support::*;

#[test]
fn dump() {
    let c = build(
        "FROM alpine AS base\nARG A=1\nENV B=2\nWORKDIR /src\nCOPY --chown=app:app . .\nRUN echo $A\nFROM scratch\nCOPY --from=base /src /out\nCMD [\"/out/app\"]\n",
        &options_for("linux/arm64"),
    )
    .unwrap();
    println!("{}", snapshot(&c));
    panic!();
}
