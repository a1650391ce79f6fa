//! `berth-shim`: the per-container process (see `engine::runtime::shim`). It forks at once so
//! the caller can reap the first process and the shim lives on, reparented, in its own session.

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match engine::runtime::shim::parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth-shim: {e}");
            std::process::exit(2);
        }
    };
    // SAFETY: nothing but this thread exists yet; the child goes on with a copy of this state.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => std::process::exit(0),
        Ok(nix::unistd::ForkResult::Child) => {}
        Err(e) => {
            println!("error fork: {e}");
            std::process::exit(1);
        }
    }
    let mut answer = std::io::stdout();
    let result = engine::runtime::shim::run(&cfg, &mut answer);
    let _ = answer.flush();
    match result {
        Ok(rec) => eprintln!("berth-shim {}: exited with {}", cfg.id, rec.exit_code),
        Err(e) => {
            eprintln!("berth-shim {}: {e}", cfg.id);
            std::process::exit(1);
        }
    }
}
