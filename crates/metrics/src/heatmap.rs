//! The language × language mAP heatmap as a self-contained SVG (no plotting dependency).
//!
//! Rows are query languages, columns candidate languages; each cell shows its value and is
//! coloured on a fixed 0–1 viridis-like scale (so plots of different models compare); cells
//! without a value (no answerable query) are grey and marked "–".

use std::fmt::Write;

/// Colour stops of the scale (viridis, sampled), from 0 to 1.
const STOPS: [(f64, [u8; 3]); 5] = [
    (0.00, [68, 1, 84]),
    (0.25, [59, 82, 139]),
    (0.50, [33, 145, 140]),
    (0.75, [94, 201, 98]),
    (1.00, [253, 231, 37]),
];

/// The colour of `v` in [0, 1] (clamped).
pub fn colour(v: f64) -> [u8; 3] {
    let v = if v.is_finite() { v.clamp(0.0, 1.0) } else { 0.0 };
    for w in STOPS.windows(2) {
        let ((a, ca), (b, cb)) = (w[0], w[1]);
        if v <= b {
            let t = (v - a) / (b - a);
            let mix = |i: usize| (ca[i] as f64 + t * (cb[i] as f64 - ca[i] as f64)).round() as u8;
            return [mix(0), mix(1), mix(2)];
        }
    }
    STOPS[STOPS.len() - 1].1
}

/// SVG of a square matrix `values[row][col]` labelled by `labels`.
pub fn heatmap_svg(title: &str, labels: &[String], values: &[Vec<Option<f64>>]) -> String {
    let n = labels.len();
    let cell = 52.0;
    let (left, top) = (60.0, 70.0);
    let grid = cell * n as f64;
    let width = left + grid + 110.0;
    let height = top + grid + 40.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(svg, r#"<text x="{left}" y="24" font-size="16">{}</text>"#, escape(title));
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" font-size="11" text-anchor="middle">candidate language</text>"#,
        left + grid / 2.0,
        top - 28.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="14" y="{}" font-size="11" text-anchor="middle" transform="rotate(-90 14 {})">query language</text>"#,
        top + grid / 2.0,
        top + grid / 2.0
    );
    for (i, label) in labels.iter().enumerate() {
        let c = left + cell * (i as f64 + 0.5);
        let r = top + cell * (i as f64 + 0.5);
        let _ = writeln!(svg, r#"<text x="{c}" y="{}" font-size="12" text-anchor="middle">{}</text>"#, top - 8.0, escape(label));
        let _ = writeln!(svg, r#"<text x="{}" y="{}" font-size="12" text-anchor="end">{}</text>"#, left - 8.0, r + 4.0, escape(label));
    }
    for (i, row) in values.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            let (x, y) = (left + cell * j as f64, top + cell * i as f64);
            let (fill, text, ink) = match v {
                Some(v) => {
                    let [r, g, b] = colour(*v);
                    let ink = if *v > 0.6 { "black" } else { "white" };
                    (format!("rgb({r},{g},{b})"), format!("{v:.3}"), ink)
                }
                None => ("rgb(200,200,200)".to_string(), "–".to_string(), "black"),
            };
            let _ = writeln!(svg, r#"<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{fill}" stroke="white"/>"#);
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" font-size="11" text-anchor="middle" fill="{ink}">{text}</text>"#,
                x + cell / 2.0,
                y + cell / 2.0 + 4.0
            );
        }
    }
    // Colour bar.
    let (bx, steps) = (left + grid + 30.0, 20);
    let step_h = grid / steps as f64;
    for k in 0..steps {
        let v = 1.0 - (k as f64 + 0.5) / steps as f64;
        let [r, g, b] = colour(v);
        let _ = writeln!(
            svg,
            r#"<rect x="{bx}" y="{}" width="18" height="{}" fill="rgb({r},{g},{b})"/>"#,
            top + step_h * k as f64,
            step_h + 0.5
        );
    }
    for (v, y) in [(1.0, top), (0.5, top + grid / 2.0), (0.0, top + grid)] {
        let _ = writeln!(svg, r#"<text x="{}" y="{}" font-size="11">{v:.1}</text>"#, bx + 24.0, y + 4.0);
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
