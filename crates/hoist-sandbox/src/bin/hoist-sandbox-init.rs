//! A stand-alone helper for [`hoist_sandbox::BuiltinExecutor::with_helper`], for programs
//! (such as test harnesses) that cannot call `init_if_requested` first in their own `main`.

fn main() {
    hoist_sandbox::init_if_requested();
    eprintln!(
        "hoist-sandbox-init: this is hoist's sandbox helper; it is started by hoist, not by hand"
    );
    std::process::exit(2);
}
