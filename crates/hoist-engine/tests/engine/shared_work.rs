//! Work shared between builds on one state dir (two processes, here two workers and
//! runtimes in one process): a step another build is running is waited for and its result
//! used, not run again.

use std::time::Duration;

use hoist_export::Output;
use hoist_sandbox::ExitStatus;

use crate::case::Case;

#[test]
fn a_step_running_in_another_build_is_waited_for_and_shared() {
    let case = Case::new(
        "FROM scratch\nCOPY a.txt /a.txt\nRUN slow\n",
        &[("a.txt", "a\n")],
    )
    .script(|spec, _| {
        std::thread::sleep(Duration::from_millis(700));
        std::fs::write(spec.rootfs.join("made"), "by the step\n")?;
        Ok(ExitStatus::Code(0))
    });
    let cache_only = |request: &mut hoist_engine::BuildRequest| {
        request.outputs = Output::parse_all(&["type=cacheonly".to_owned()]).unwrap();
    };
    let (first, second) = std::thread::scope(|s| {
        let first = s.spawn(|| case.build_with(cache_only).unwrap());
        std::thread::sleep(Duration::from_millis(200));
        let second = s.spawn(|| case.build_with(cache_only).unwrap());
        (first.join().unwrap(), second.join().unwrap())
    });
    assert_eq!(case.runs(), 1, "the step ran once");
    let mut outcomes = [first.outcome("RUN slow"), second.outcome("RUN slow")];
    outcomes.sort_unstable();
    assert_eq!(outcomes, ["cached", "done"]);
    assert_eq!(
        first.result.images[0].layers, second.result.images[0].layers,
        "both builds have the one result"
    );
}
