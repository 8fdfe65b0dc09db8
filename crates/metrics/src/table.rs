//! Text tables shaped like the paper's: Table 1 (mAP Mo./Cr./Mul., R@1 Mo./Cr., R@10 Mul.),
//! its per-language breakdown (Tables 3–6) and Table 2 / Tables 7–8 (rank distance).
//!
//! Extra measures of the report ([`crate::EvalOptions::extra_measures`]) add three columns each
//! to Table 1 and its per-language rows, `NAME Mo.`, `NAME Cr.` and `NAME Mul.`, in name order
//! after the paper's columns; without extra measures the tables are exactly the paper's.

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::lareqa::{LareqaReport, Scores};

/// Table 1 (macro averages) followed by the per-language rows of Tables 3–6, as Markdown, with
/// three columns (mono, cross, multi) per extra measure of the report.
pub fn table_1(report: &LareqaReport) -> String {
    let s = &report.settings;
    let extra = extra_names(report);
    let header: String = extra.iter().map(|n| format!(" {n} Mo. | {n} Cr. | {n} Mul. |")).collect();
    let rule = "---:|".repeat(3 * extra.len());
    let macro_cells: String =
        extra.iter().map(|n| cells([&s.mono, &s.cross, &s.multi].map(|u| u.extra.get(n).copied()))).collect();
    let mut out = String::new();
    let _ = writeln!(out, "Table 1 shape: {} ({} scores)", report.benchmark, report.score.name());
    let _ = writeln!(out, "| Benchmark | mAP Mo. | mAP Cr. | mAP Mul. | R@1 Mo. | R@1 Cr. | R@10 Mul. |{header}");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|{rule}");
    let _ = writeln!(
        out,
        "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} |{macro_cells}",
        report.benchmark, s.mono.map, s.cross.map, s.multi.map, s.mono.recall_at_1, s.cross.recall_at_1, s.multi.recall_at_10
    );
    if s.cross.skipped_queries > 0 {
        let _ = writeln!(
            out,
            "(cross-lingual: {} query/target pairs without an answer in the target skipped)",
            s.cross.skipped_queries
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Per query language (Tables 3–6 shape):");
    let _ = writeln!(out, "| lang | mAP Mo. | mAP Cr. | mAP Mul. | R@1 Mo. | R@1 Cr. | R@10 Mul. |{header}");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|{rule}");
    for (lang, l) in &report.per_language {
        let lang_cells: String =
            extra.iter().map(|n| cells([&l.mono, &l.cross, &l.multi].map(|u| u.extra.get(n).copied()))).collect();
        let _ = writeln!(
            out,
            "| {lang} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} |{lang_cells}",
            l.mono.map, l.cross.map, l.multi.map, l.mono.recall_at_1, l.cross.recall_at_1, l.multi.recall_at_10
        );
    }
    // As for mAP: mono and multi are the settings' means over languages, cross the mean of the
    // per-language cross rows.
    let mean_cells: String = extra
        .iter()
        .map(|n| {
            let cross = report
                .per_language
                .values()
                .all(|l| l.cross.extra.contains_key(n))
                .then(|| macro_of(report, |l| l.cross.extra.get(n).copied().unwrap_or(f64::NAN)));
            cells([s.mono.extra.get(n).copied(), cross, s.multi.extra.get(n).copied()])
        })
        .collect();
    let _ = writeln!(
        out,
        "| Mean | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} |{mean_cells}",
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

/// Names of the extra measures found anywhere in the report, sorted.
fn extra_names(report: &LareqaReport) -> Vec<String> {
    let s = &report.settings;
    let units =
        [&s.mono, &s.cross, &s.multi].into_iter().chain(report.per_language.values().flat_map(|l| [&l.mono, &l.cross, &l.multi]));
    let names: BTreeSet<&String> = units.flat_map(|u: &Scores| u.extra.keys()).collect();
    names.into_iter().cloned().collect()
}

/// ` a | b | c |` for three optional values (`-` where a unit lacks the measure).
fn cells(values: [Option<f64>; 3]) -> String {
    values.iter().map(|v| v.map_or_else(|| " - |".to_string(), |v| format!(" {v:.4} |"))).collect()
}

/// Mean over languages of a per-language value (the Tables 3–6 "Mean" row).
fn macro_of(report: &LareqaReport, f: impl Fn(&crate::lareqa::LanguageScores) -> f64) -> f64 {
    let n = report.per_language.len().max(1) as f64;
    report.per_language.values().map(f).sum::<f64>() / n
}
