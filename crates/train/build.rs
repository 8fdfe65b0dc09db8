//! Records the project's own git commit at build time, so a run card names the code version
//! without running git at run time in the user's current directory (a hostile repository's
//! config, e.g. `core.fsmonitor`, would run a command of its choosing there). git runs here only
//! in this crate's own checkout, with hooks and fsmonitor turned off.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    // A packaged crate carries its commit in `.cargo_vcs_info.json`; git there could find
    // whatever repository happens to enclose the unpacked crate.
    if let Ok(info) = std::fs::read_to_string(std::path::Path::new(&dir).join(".cargo_vcs_info.json")) {
        let sha = info.split("\"sha1\"").nth(1).and_then(|s| s.split('"').nth(1)).unwrap_or("unknown");
        let dirty = if info.contains("\"dirty\": true") { "-dirty" } else { "" };
        println!("cargo:rustc-env=HYBRID_IR_GIT_COMMIT={sha}{dirty}");
        println!("cargo:rerun-if-changed=.cargo_vcs_info.json");
        return;
    }
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .current_dir(&dir)
            .args(["-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null"])
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = match git(&["rev-parse", "HEAD"]) {
        Some(c) if !c.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            if dirty { format!("{c}-dirty") } else { c }
        }
        _ => "unknown (built outside a git checkout)".to_string(),
    };
    println!("cargo:rustc-env=HYBRID_IR_GIT_COMMIT={commit}");
    // Re-run when HEAD moves; a dirty flag may lag until the next rebuild of this crate.
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={dir}/{head}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
