//! Where a figure was measured: the CPU model, the caches the OS reports (what `gemm` sizes its
//! blocks from), the threads the engines use and the load at the start. Printed above every
//! `speed all` table and stored with the results, so no figure travels without its machine.

use serde_json::{Value, json};

/// One `key: value` field of the first processor in `/proc/cpuinfo`.
fn cpuinfo_field(cpuinfo: &str, key: &str) -> Option<String> {
    cpuinfo.lines().take_while(|l| !l.trim().is_empty()).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

/// `L1d 48K, L1i 32K, L2 2048K, L3 266240K` from sysfs (cpu0), or an empty string elsewhere.
fn caches() -> String {
    let base = std::path::Path::new("/sys/devices/system/cpu/cpu0/cache");
    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string());
    let mut out = Vec::new();
    for i in 0..8 {
        let dir = base.join(format!("index{i}"));
        let (Some(level), Some(kind), Some(size)) = (read(dir.join("level")), read(dir.join("type")), read(dir.join("size"))) else {
            continue;
        };
        let suffix = match kind.as_str() {
            "Data" => "d",
            "Instruction" => "i",
            _ => "",
        };
        out.push(format!("L{level}{suffix} {size}"));
    }
    out.join(", ")
}

/// The machine facts as JSON: `cpu`, `family_model`, `flags` (the SIMD ones that matter here),
/// `caches`, `threads`, `load_1min`.
pub fn describe() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo_field(&cpuinfo, "model name").unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let family_model = match (cpuinfo_field(&cpuinfo, "cpu family"), cpuinfo_field(&cpuinfo, "model")) {
        (Some(f), Some(m)) => format!("family {f} model {m}"),
        _ => String::new(),
    };
    let flags = cpuinfo_field(&cpuinfo, "flags").unwrap_or_default();
    let simd: Vec<&str> = ["avx2", "fma", "avx512f", "avx512_bf16", "amx_tile"]
        .into_iter()
        .filter(|f| flags.split_whitespace().any(|g| g == *f))
        .collect();
    let load = std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| l.split_whitespace().next().map(str::to_string));
    json!({
        "mode": "machine",
        "cpu": cpu,
        "family_model": family_model,
        "flags": simd.join(" "),
        "caches": caches(),
        "threads": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "load_1min": load,
    })
}

/// One line for the tables' header.
pub fn summary(machine: &Value) -> String {
    let s = |k: &str| machine.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
    format!(
        "Machine: {} ({}; {}); caches {}; {} threads; load {} at start",
        s("cpu"),
        s("family_model"),
        s("flags"),
        s("caches"),
        machine.get("threads").and_then(Value::as_u64).unwrap_or(0),
        s("load_1min"),
    )
}
