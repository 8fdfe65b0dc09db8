//! Running a test as MPI ranks: the test binary starts itself under `mpiexec -n N`, filtered to
//! the one test, and each rank runs the test's body.
//!
//! ```text
//! #[test]
//! fn sums_across_ranks() {
//!     let Some(ranks) = hybrid_ir_collective::testing::RankTest::new("sums_across_ranks", 2) else { return };
//!     // ... this part runs on every rank, with `ranks.collective()` ...
//! }
//! ```

use std::process::{Command, Output};

/// Set in the ranks' environment to the name of the test they run.
const RANK_TEST_VAR: &str = "HYBRID_IR_RANK_TEST";

/// Starts `name` (a test of the current test binary) as `ranks` MPI ranks and returns their
/// combined output; returns `None` when called inside one of those ranks (run the body then).
pub fn spawn_ranks(name: &str, ranks: usize) -> Option<Output> {
    spawn_ranks_with(name, ranks, &[])
}

/// [`spawn_ranks`] with extra environment variables for the ranks.
pub fn spawn_ranks_with(name: &str, ranks: usize, env: &[(&str, &str)]) -> Option<Output> {
    if std::env::var(RANK_TEST_VAR).is_ok_and(|v| v == name) {
        return None;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = Command::new(mpiexec());
    cmd.arg("-n").arg(ranks.to_string()).arg(&exe).args([name, "--exact", "--nocapture", "--test-threads=1"]);
    cmd.env(RANK_TEST_VAR, name).envs(env.iter().copied());
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot start {} (is MPICH installed?): {e}", mpiexec()));
    Some(out)
}

/// The launcher: `$MPIEXEC`, else `mpiexec` on the PATH.
pub fn mpiexec() -> String {
    std::env::var("MPIEXEC").unwrap_or_else(|_| "mpiexec".into())
}

/// Panics with both output streams unless the ranks succeeded.
pub fn assert_ranks_succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "the MPI ranks failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
