//! The printed tables: one row per run, ratios against PyTorch's run of the same kind.

use serde_json::Value;

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn gib(v: &Value) -> String {
    num(v, "peak_rss_bytes").map_or("-".into(), |b| format!("{:.2}", b / (1u64 << 30) as f64))
}

fn engine(v: &Value) -> &str {
    v.get("engine").and_then(Value::as_str).unwrap_or("?")
}

fn ratio(x: Option<f64>, base: Option<f64>) -> String {
    match (x, base) {
        (Some(x), Some(b)) if b > 0.0 => format!("{:.2}x", x / b),
        _ => "-".into(),
    }
}

/// Prints the GEMM, training-step and encoding tables to stdout.
pub fn print_tables(results: &[Value]) {
    let of = |mode: &'static str| results.iter().filter(move |v| v.get("mode").and_then(Value::as_str) == Some(mode));

    if let Some(machine) = of("machine").next() {
        println!("\n{}", crate::machine::summary(machine));
    }
    println!("\nGEMM f32 1024x1024 (the machine's practical peak; hybrid-ir: the encoder's product path)");
    println!("| engine | GFLOP/s |");
    println!("|---|---|");
    for v in of("gemm") {
        println!("| {} | {:.1} |", engine(v), num(v, "gflops").unwrap_or(f64::NAN));
    }

    let pytorch_step = of("train-step")
        .find(|v| engine(v) == "pytorch" && v.get("variant").and_then(Value::as_str) == Some("same algorithm"))
        .and_then(|v| num(v, "examples_per_s"));
    println!("\nTraining step (examples/s ratio vs PyTorch's same-algorithm step of this run)");
    println!("| engine | variant | s/step (median) | examples/s | real tok/s | padded / real tokens | updated params | peak RSS GiB | vs PyTorch |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for v in of("train-step") {
        println!(
            "| {} | {} | {:.3} | {:.2} | {:.0} | {} / {} | {:.1}M | {} | {} |",
            engine(v),
            v.get("variant").and_then(Value::as_str).unwrap_or("-"),
            num(v, "step_s_median").unwrap_or(f64::NAN),
            num(v, "examples_per_s").unwrap_or(f64::NAN),
            num(v, "real_tokens_per_s").unwrap_or(f64::NAN),
            num(v, "padded_tokens").unwrap_or(f64::NAN),
            num(v, "real_tokens").unwrap_or(f64::NAN),
            num(v, "updated_params").unwrap_or(f64::NAN) / 1e6,
            gib(v),
            ratio(num(v, "examples_per_s"), pytorch_step),
        );
    }

    let pytorch_encode = of("encode").find(|v| engine(v) == "pytorch").and_then(|v| num(v, "seq_per_s"));
    println!("\nEncoding (length-sorted, batch 64)");
    println!("| engine | sequences | seconds | seq/s | peak RSS GiB | vs PyTorch |");
    println!("|---|---|---|---|---|---|");
    for v in of("encode") {
        println!(
            "| {} | {} | {:.2} | {:.1} | {} | {} |",
            engine(v),
            num(v, "sequences").unwrap_or(f64::NAN),
            num(v, "seconds").unwrap_or(f64::NAN),
            num(v, "seq_per_s").unwrap_or(f64::NAN),
            gib(v),
            ratio(num(v, "seq_per_s"), pytorch_encode),
        );
    }
}
