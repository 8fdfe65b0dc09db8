//! The plots render at their size, keep every text on the canvas (checked on the SVG with an
//! XML parser), and use the colour scales they say: viridis fitted to the data, a diverging
//! scale centred at 0 for differences. Set `HYBRID_IR_PLOT_SAMPLES=DIR` to keep the renders.

use hybrid_ir_metrics::heatmap::{Heatmap, HeatmapScale, matrix_difference};
use hybrid_ir_metrics::plot::{LossCurves, Plot};

const XQUAD: [&str; 11] = ["ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"];

fn labels(codes: &[&str]) -> Vec<String> {
    codes.iter().map(|s| s.to_string()).collect()
}

/// A matrix between 0.55 and 0.83 (the range the old 0–1 scale flattened), one cell missing.
fn map_matrix(n: usize, shift: f64) -> Vec<Vec<Option<f64>>> {
    (0..n)
        .map(|i| {
            (0..n)
                .map(|j| {
                    if i == 1 && j == 2 {
                        None
                    } else {
                        let base = if i == j { 0.83 } else { 0.55 + 0.2 * ((i * 7 + j * 3) % 11) as f64 / 10.0 };
                        Some((base + shift * (i as f64 - j as f64) / n as f64).clamp(0.0, 1.0))
                    }
                })
                .collect()
        })
        .collect()
}

/// One `<text>` element's estimated box on the canvas.
#[derive(Debug)]
struct TextBox {
    text: String,
    x: (f64, f64),
    y: (f64, f64),
}

/// Width, height and the estimated box of every `<text>`: its length × 0.6 · font-size wide,
/// placed by `x`, `text-anchor` and `dy`, from 0.8 · font-size above the baseline to 0.2 · below,
/// turned by a `rotate(a, cx, cy)` transform.
fn text_boxes(svg: &str) -> ((f64, f64), Vec<TextBox>) {
    let doc = roxmltree::Document::parse(svg).expect("the SVG is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    let num = |n: roxmltree::Node, a: &str| n.attribute(a).map(|v| v.trim_end_matches("px").parse::<f64>().unwrap());
    let size = (num(root, "width").unwrap(), num(root, "height").unwrap());
    let mut boxes = Vec::new();
    for node in doc.descendants().filter(|n| n.has_tag_name("text")) {
        let text: String = node.children().filter_map(|d| d.text()).collect::<String>().trim().to_string();
        let fs = num(node, "font-size").expect("font-size on every text");
        let (x, y) = (num(node, "x").unwrap_or(0.0), num(node, "y").unwrap_or(0.0));
        let dy = match node.attribute("dy") {
            None => 0.0,
            Some(d) if d.ends_with("em") => d.trim_end_matches("em").parse::<f64>().unwrap() * fs,
            Some(d) if d.ends_with("ex") => d.trim_end_matches("ex").parse::<f64>().unwrap() * fs * 0.5,
            Some(d) => d.parse::<f64>().unwrap(),
        };
        let w = text.chars().count() as f64 * 0.6 * fs;
        let (x0, x1) = match node.attribute("text-anchor").unwrap_or("start") {
            "middle" => (x - w / 2.0, x + w / 2.0),
            "end" => (x - w, x),
            _ => (x, x + w),
        };
        let baseline = y + dy;
        let (y0, y1) = (baseline - 0.8 * fs, baseline + 0.2 * fs);
        let mut corners = vec![(x0, y0), (x1, y0), (x0, y1), (x1, y1)];
        if let Some(t) = node.attribute("transform") {
            let args: Vec<f64> = t
                .trim_start_matches("rotate(")
                .trim_end_matches(')')
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
            assert!(t.starts_with("rotate(") && args.len() == 3, "unexpected transform {t}");
            let (a, cx, cy) = (args[0].to_radians(), args[1], args[2]);
            for p in &mut corners {
                let (dx, dy) = (p.0 - cx, p.1 - cy);
                *p = (cx + dx * a.cos() - dy * a.sin(), cy + dx * a.sin() + dy * a.cos());
            }
        }
        let xs = corners.iter().map(|p| p.0);
        let ys = corners.iter().map(|p| p.1);
        boxes.push(TextBox {
            text,
            x: (xs.clone().fold(f64::INFINITY, f64::min), xs.fold(f64::NEG_INFINITY, f64::max)),
            y: (ys.clone().fold(f64::INFINITY, f64::min), ys.fold(f64::NEG_INFINITY, f64::max)),
        });
    }
    (size, boxes)
}

/// Renders `plot` as SVG and PNG, checks their sizes and that no text is clipped; returns the SVG.
fn check_plot(plot: &impl Plot, name: &str) -> String {
    let (w, h) = plot.size();
    let svg = plot.svg();
    let ((sw, sh), boxes) = text_boxes(&svg);
    assert_eq!((sw, sh), (w as f64, h as f64), "{name}: SVG size");
    assert!(!boxes.is_empty(), "{name}: no text");
    for b in &boxes {
        assert!(
            b.x.0 >= -0.5 && b.x.1 <= sw + 0.5 && b.y.0 >= -0.5 && b.y.1 <= sh + 0.5,
            "{name}: {:?} leaves the {sw}x{sh} canvas",
            b
        );
    }
    let png = plot.png();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}: PNG signature");
    let dims = (u32::from_be_bytes(png[16..20].try_into().unwrap()), u32::from_be_bytes(png[20..24].try_into().unwrap()));
    assert_eq!(dims, (w, h), "{name}: PNG size");
    // The bitmap has its text: dark pixels in the title band, which holds nothing else.
    let decoder = png::Decoder::new(std::io::Cursor::new(&png));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut pixels).unwrap();
    let dark = pixels[..(w * 50 * 3) as usize].chunks(3).filter(|p| p.iter().all(|&c| c < 100)).count();
    assert!(dark > 50, "{name}: no text drawn in the PNG's title band ({dark} dark pixels)");
    if let Some(dir) = std::env::var_os("HYBRID_IR_PLOT_SAMPLES") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.svg")), &svg).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
    }
    svg
}

#[test]
fn absolute_heatmap_fits_its_canvas_and_its_data() {
    let langs = labels(&XQUAD);
    let values = map_matrix(langs.len(), 0.0);
    let title = "XQuAD-R: mAP of Hybrid α=0.3 seed 44 trained on MLQA-R (rows: query language, columns: candidate language)";
    let plot = Heatmap::absolute(title, &langs, &values);
    let (w, h) = plot.size();
    assert!((600..1400).contains(&w) && (600..1400).contains(&h), "{w}x{h}");
    let svg = check_plot(&plot, "heatmap-absolute");
    // The scale spans the data, not 0–1, so 0.55 and 0.83 get far-apart colours.
    assert_eq!(plot.scale(), HeatmapScale::Sequential { low: 0.55, high: 0.83 });
    let (lo, hi) = (plot.scale().colour(0.55), plot.scale().colour(0.83));
    assert!(lo.iter().zip(&hi).map(|(a, b)| (*a as i32 - *b as i32).abs()).sum::<i32>() > 300, "{lo:?} {hi:?}");
    // Every word of the title is there (wrapped onto lines), and every label and value.
    let (_, boxes) = text_boxes(&svg);
    let texts: Vec<&str> = boxes.iter().map(|b| b.text.as_str()).collect();
    assert!(boxes.iter().filter(|b| title.contains(b.text.as_str()) && b.text.len() > 10).count() >= 2, "{texts:?}");
    for expected in ["candidate language", "query language", "mAP", "0.830", "–", "zh"] {
        assert!(texts.contains(&expected), "{expected:?} not in {texts:?}");
    }
    // The colour bar's ticks are round values inside the data's range.
    let ticks: Vec<f64> = texts.iter().filter(|t| t.len() == 4 && t.starts_with("0.")).map(|t| t.parse().unwrap()).collect();
    assert!(ticks.len() >= 3, "{texts:?}");
    assert!(ticks.iter().all(|t| (0.55 - 1e-9..=0.83 + 1e-9).contains(t)), "{ticks:?}");
}

#[test]
fn small_and_empty_heatmaps_still_fit() {
    let long = "a title much longer than two cells: MLQA-R mAP of X-X-mono seed 7 trained on a user corpus named my_pairs.jsonl";
    check_plot(&Heatmap::absolute(long, &labels(&["en", "de"]), &map_matrix(2, 0.0)), "heatmap-two");
    check_plot(&Heatmap::absolute("one language", &labels(&["zh-Hant-long-label"]), &[vec![Some(0.5)]]), "heatmap-one");
    check_plot(&Heatmap::absolute("nothing to show at all", &[], &[]), "heatmap-empty");
}

#[test]
fn difference_heatmap_is_diverging_around_zero() {
    let langs = labels(&XQUAD);
    let (a, b) = (map_matrix(langs.len(), 0.08), map_matrix(langs.len(), 0.0));
    let (shared, diff) = matrix_difference(&langs, &a, &langs, &b);
    assert_eq!(shared, langs);
    let title = "XQuAD-R: mAP of Hybrid minus X-X-mono, trained on MLQA-R (rows: query language, columns: candidate language)";
    let plot = Heatmap::difference(title, &shared, &diff);
    let svg = check_plot(&plot, "heatmap-difference");

    // Symmetric around 0, covering the largest difference.
    let scale = plot.scale();
    let (lo, hi) = scale.range();
    let max = diff.iter().flatten().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(lo == -hi && hi >= max && hi < max + 0.006, "{lo} {hi} {max}");
    // 0 is white-ish, positive red, negative blue, and equal magnitudes are equally strong.
    let zero = scale.colour(0.0);
    assert!(zero.iter().all(|&c| c >= 230), "{zero:?}");
    let (plus, minus) = (scale.colour(hi * 0.6), scale.colour(-hi * 0.6));
    assert!(plus[0] > plus[2] + 60, "positive is red: {plus:?}");
    assert!(minus[2] > minus[0] + 60, "negative is blue: {minus:?}");
    let strength = |c: [u8; 3]| c.iter().map(|&x| 255 - x as i32).sum::<i32>();
    assert!((strength(plus) - strength(minus)).abs() < 120, "{plus:?} {minus:?}");

    // The cells are drawn in those colours, and the values are signed.
    let fill = |c: [u8; 3]| format!("fill=\"#{:02X}{:02X}{:02X}\"", c[0], c[1], c[2]);
    let (pos, neg) = (diff[10][0].unwrap(), diff[0][10].unwrap());
    assert!(pos > 0.0 && neg < 0.0, "{pos} {neg}");
    assert!(svg.contains(&fill(scale.colour(pos))), "no cell filled with {}", fill(scale.colour(pos)));
    assert!(svg.contains(&fill(scale.colour(neg))), "no cell filled with {}", fill(scale.colour(neg)));
    let (_, boxes) = text_boxes(&svg);
    assert!(boxes.iter().any(|b| b.text == format!("{pos:+.3}")), "no signed value {pos:+.3}");
    assert!(boxes.iter().any(|b| b.text == format!("{neg:+.3}")));
    assert!(boxes.iter().any(|b| b.text == "0.00" || b.text == "0.000" || b.text == "0.0"), "0 is a tick of the bar");
}

#[test]
fn loss_plot_has_axes_ticks_and_a_legend() {
    // A falling noisy loss over 300 steps, validation every 25 (and at step 0).
    let noise = |s: usize| 0.15 * ((s * 37 % 17) as f64 / 17.0 - 0.5);
    let train: Vec<(f64, f64)> = (1..=300).map(|s| (s as f64, 0.4 + 2.5 * (-(s as f64) / 60.0).exp() + noise(s))).collect();
    let val: Vec<(f64, f64)> = (0..=12).map(|k| ((25 * k) as f64, 0.5 + 2.4 * (-(25.0 * k as f64) / 60.0).exp())).collect();
    let plot = LossCurves::new(&train, &val);
    let svg = check_plot(&plot, "loss");
    let (_, boxes) = text_boxes(&svg);
    let texts: Vec<&str> = boxes.iter().map(|b| b.text.as_str()).collect();
    let legend = ["train, raw", "train, smoothed (EMA 0.9, debiased)", "validation"];
    for expected in ["step", "loss", "loss vs optimizer step"].iter().chain(&legend) {
        assert!(texts.contains(expected), "{expected:?} not in {texts:?}");
    }
    // Round ticks: every step tick a multiple of 10 (of 50 here), every loss tick of 0.1 or so.
    let numbers: Vec<f64> = texts.iter().filter_map(|t| t.parse::<f64>().ok()).collect();
    let steps: Vec<f64> = numbers.iter().copied().filter(|v| *v >= 10.0).collect();
    assert!(steps.len() >= 4 && steps.iter().all(|v| v % 10.0 == 0.0), "{numbers:?}");
    let losses: Vec<f64> = numbers.iter().copied().filter(|v| *v < 10.0 && *v > 0.0).collect();
    assert!(losses.len() >= 4 && losses.iter().all(|v| ((v * 10.0).round() - v * 10.0).abs() < 1e-9), "{losses:?}");
    assert!(svg.contains("<polyline"), "the curves are polylines");
    // The smoothed curve starts on the data instead of lagging from an undebiased 0 or above it.
    assert!((plot.smoothed()[0].1 - train[0].1).abs() < 1e-12);
    let mean_gap: f64 =
        plot.smoothed().iter().zip(&train).skip(100).map(|(s, t)| (s.1 - t.1).abs()).sum::<f64>() / (train.len() - 100) as f64;
    assert!(mean_gap < 0.1, "smoothed curve far from the data: {mean_gap}");

    // One step: its two round ticks, each once.
    let svg = check_plot(&LossCurves::new(&[(1.0, 2.0)], &[]), "loss-one-point");
    let (_, boxes) = text_boxes(&svg);
    let steps: Vec<&str> = boxes.iter().map(|b| b.text.as_str()).filter(|t| *t == "1" || *t == "2").collect();
    assert_eq!(steps, ["1", "2"], "{:?}", boxes.iter().map(|b| &b.text).collect::<Vec<_>>());
    check_plot(&LossCurves::new(&[], &[]), "loss-empty");
}
