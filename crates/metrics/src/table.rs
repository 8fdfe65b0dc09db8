//! Text tables shaped like the paper's: Table 1 (mAP Mo./Cr./Mul., R@1 Mo./Cr., R@10 Mul.),
//! its per-language breakdown (Tables 3–6) and Table 2 / Tables 7–8 (rank distance).

use std::fmt::Write;

use crate::lareqa::LareqaReport;

/// Table 1 (macro averages) followed by the per-language rows of Tables 3–6, as Markdown.
pub fn table_1(report: &LareqaReport) -> String {
    let s = &report.settings;
    let mut out = String::new();
    let _ = writeln!(out, "Table 1 shape: {} ({} scores)", report.benchmark, report.score.name());
    let _ = writeln!(out, "| Benchmark | mAP Mo. | mAP Cr. | mAP Mul. | R@1 Mo. | R@1 Cr. | R@10 Mul. |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} |",
        report.benchmark,
        s.mono.map,
        s.cross.map,
        s.multi.map,
        s.mono.recall_at_1,
        s.cross.recall_at_1,
        s.multi.recall_at_10
    );
    if s.cross.skipped_queries > 0 {
        let _ = writeln!(out, "(cross-lingual: {} query/target pairs without an answer in the target skipped)", s.cross.skipped_queries);
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Per query language (Tables 3–6 shape):");
    let _ = writeln!(out, "| lang | mAP Mo. | mAP Cr. | mAP Mul. | R@1 Mo. | R@1 Cr. | R@10 Mul. |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    for (lang, l) in &report.per_language {
        let _ = writeln!(
            out,
            "| {lang} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} |",
            l.mono.map, l.cross.map, l.multi.map, l.mono.recall_at_1, l.cross.recall_at_1, l.multi.recall_at_10
        );
    }
    let _ = writeln!(
        out,
        "| Mean | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} |",
        s.mono.map,
        macro_of(report, |l| l.cross.map),
        s.multi.map,
        s.mono.recall_at_1,
        macro_of(report, |l| l.cross.recall_at_1),
        s.multi.recall_at_10
    );
    out
}

/// Table 2 (macro rank distance) followed by the per-language rows of Tables 7–8, as Markdown.
pub fn table_2(report: &LareqaReport) -> String {
    let mut out = String::new();
    let rd = report.settings.multi.rank_distance.unwrap_or(f64::NAN);
    let _ = writeln!(out, "Table 2 shape: language bias (mean rank distance, multilingual pool, lower is better)");
    let _ = writeln!(out, "| Benchmark | Rank distance |");
    let _ = writeln!(out, "|---|---:|");
    let _ = writeln!(out, "| {} | {rd:.1} |", report.benchmark);
    let _ = writeln!(out);
    let _ = writeln!(out, "Per query language (Tables 7–8 shape):");
    let _ = writeln!(out, "| lang | Rank distance |");
    let _ = writeln!(out, "|---|---:|");
    for (lang, l) in &report.per_language {
        let _ = writeln!(out, "| {lang} | {:.1} |", l.multi.rank_distance.unwrap_or(f64::NAN));
    }
    let _ = writeln!(out, "| Mean | {rd:.1} |");
    out
}

/// Mean over languages of a per-language value (the Tables 3–6 "Mean" row).
fn macro_of(report: &LareqaReport, f: impl Fn(&crate::lareqa::LanguageScores) -> f64) -> f64 {
    let n = report.per_language.len().max(1) as f64;
    report.per_language.values().map(f).sum::<f64>() / n
}
