//! What every plot of the workspace shares: one [`Plot`] drawn by `plotters` onto an SVG or a
//! PNG canvas, text set in DejaVu Sans (embedded by the `dejavu` crate, so neither a system font
//! nor fontconfig is needed), text measurement for layouts that keep every label on the canvas,
//! and the two colour scales (sequential viridis, diverging blue–white–red).
//!
//! The heatmaps of [`crate::heatmap`] and the training crate's loss curve implement [`Plot`].

use std::sync::Once;

pub use plotters;
use plotters::coord::Shift;
use plotters::coord::ranged1d::Ranged;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::{FontDesc, FontFamily, FontStyle, register_font};

/// The font family every plot uses (DejaVu Sans, registered on first use). SVG viewers draw
/// it with their own sans-serif font, which is as wide as DejaVu Sans or narrower, so the
/// layouts measured with DejaVu Sans still fit.
pub const FONT: &str = "sans-serif";

/// What drawing a plot returns: plotters' error of the backend `DB`.
pub type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Registers DejaVu Sans (regular and bold) as [`FONT`]; called by every measurement and
/// rendering function, so users need not.
pub fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let regular = register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok();
        let bold = register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok();
        debug_assert!(regular && bold, "the embedded DejaVu Sans fonts parse");
    });
}

/// The font of [`FONT`] at `size` (plotters' unit: the SVG `font-size` is `size / 1.24`).
pub fn font(size: f64) -> FontDesc<'static> {
    register_fonts();
    FontDesc::new(FontFamily::Name(FONT), size, FontStyle::Normal)
}

/// The bold font of [`FONT`] at `size` (`FontDesc::style` would keep the regular glyphs).
pub fn bold_font(size: f64) -> FontDesc<'static> {
    register_fonts();
    FontDesc::new(FontFamily::Name(FONT), size, FontStyle::Bold)
}

/// Width and height in pixels of `text` in `font`, as plotters lays it out, but at least the
/// common estimate of 0.6 em a character at the SVG's font size (`size / 1.24`), so a layout
/// that fits by this measure fits in any viewer's sans-serif font.
pub fn measure(font: &FontDesc, text: &str) -> (u32, u32) {
    let chars = text.chars().count() as f64;
    let estimate = (0.6 * font.get_size() / 1.24 * chars).ceil() as u32;
    let (w, h) = font.box_size(text).unwrap_or((estimate, (font.get_size() / 1.24) as u32));
    (w.max(estimate), h)
}

/// [`measure`] in the regular [`FONT`] at `size`.
pub fn text_size(size: f64, text: &str) -> (u32, u32) {
    measure(&font(size), text)
}

/// `text` broken at spaces into lines no wider than `max_width` pixels in `font` (a word wider
/// than that is a line of its own).
pub fn wrap(text: &str, font: &FontDesc, max_width: u32) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let candidate = if line.is_empty() { word.to_string() } else { format!("{line} {word}") };
        if line.is_empty() || measure(font, &candidate).0 <= max_width {
            line = candidate;
        } else {
            lines.push(std::mem::replace(&mut line, word.to_string()));
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// A figure that draws itself onto any plotters backend, with SVG and PNG output for free.
pub trait Plot {
    /// Canvas size in pixels (width, height).
    fn size(&self) -> (u32, u32);

    /// Draws the figure onto `root`, a white canvas of [`Plot::size`].
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;

    /// The figure as a self-contained SVG document.
    ///
    /// # Panics
    /// Only on a plotters failure that cannot happen here: the SVG backend writes to a string
    /// and the font is embedded.
    fn svg(&self) -> String {
        register_fonts();
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, self.size()).into_drawing_area();
            root.fill(&WHITE).and_then(|_| self.draw(&root)).and_then(|_| root.present()).expect("the SVG plot renders");
        }
        svg
    }

    /// The figure as a PNG image (8-bit RGB).
    ///
    /// # Panics
    /// Only on a plotters or PNG-encoder failure that cannot happen here: both write to memory
    /// and the font is embedded.
    fn png(&self) -> Vec<u8> {
        register_fonts();
        let (w, h) = self.size();
        let mut pixels = vec![255u8; w as usize * h as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
            root.fill(&WHITE).and_then(|_| self.draw(&root)).and_then(|_| root.present()).expect("the PNG plot renders");
        }
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, w, h);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().expect("PNG header");
            writer.write_image_data(&pixels).expect("PNG data");
            writer.finish().expect("PNG end");
        }
        out
    }
}

/// Viridis colour stops (matplotlib's, sampled every 1/8).
const VIRIDIS: [[u8; 3]; 9] = [
    [68, 1, 84],
    [71, 45, 123],
    [59, 82, 139],
    [44, 114, 142],
    [33, 145, 140],
    [40, 174, 128],
    [94, 201, 98],
    [173, 220, 48],
    [253, 231, 37],
];

/// Blue–white–red (ColorBrewer RdBu, reversed: negative blue, positive red), from −1 to 1.
const DIVERGING: [[u8; 3]; 7] = [
    [33, 102, 172],
    [103, 169, 207],
    [209, 229, 240],
    [247, 247, 247],
    [253, 219, 199],
    [239, 138, 98],
    [178, 24, 43],
];

fn interpolate(stops: &[[u8; 3]], t: f64) -> [u8; 3] {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let pos = t * (stops.len() - 1) as f64;
    let i = (pos.floor() as usize).min(stops.len() - 2);
    let f = pos - i as f64;
    let mix = |k: usize| (stops[i][k] as f64 + f * (stops[i + 1][k] as f64 - stops[i][k] as f64)).round() as u8;
    [mix(0), mix(1), mix(2)]
}

/// Sequential scale: viridis at `t` in [0, 1] (clamped; non-finite is 0).
pub fn viridis(t: f64) -> [u8; 3] {
    interpolate(&VIRIDIS, t)
}

/// Diverging scale: `t` in [−1, 1] (clamped) from blue through white-ish (at 0) to red.
pub fn diverging(t: f64) -> [u8; 3] {
    interpolate(&DIVERGING, if t.is_finite() { (t + 1.0) / 2.0 } else { 0.5 })
}

/// Black or white, whichever reads better on `background`.
pub fn ink_on([r, g, b]: [u8; 3]) -> RGBColor {
    let luminance = 0.2126 * r as f64 + 0.7152 * g as f64 + 0.0722 * b as f64;
    if luminance > 140.0 { BLACK } else { WHITE }
}

/// Decimals that tell apart ticks `step` apart (0.05 → 2, 0.1 → 1, 5 → 0).
pub fn tick_decimals(step: f64) -> usize {
    if !(step.is_finite() && step > 0.0) {
        return 2;
    }
    (-(step.log10() + 1e-9).floor()).max(0.0) as usize
}

/// Bias-corrected exponential moving average of `points` (x, y), as TensorBoard's smoothing:
/// `acc = weight·acc + (1 − weight)·y` from `acc = 0`, shown as `acc / (1 − weight^t)` after the
/// `t`-th finite point. Unlike an EMA started at the first value, it follows the early steps
/// of a falling curve instead of trailing above it. Non-finite `y` pass through unchanged and
/// leave the average alone; `weight` is clamped to [0, 1) (0: no smoothing).
pub fn smooth_debiased(points: &[(f64, f64)], weight: f64) -> Vec<(f64, f64)> {
    let w = if weight.is_finite() { weight.clamp(0.0, 0.999_999) } else { 0.0 };
    let (mut acc, mut t) = (0.0, 0i32);
    points
        .iter()
        .map(|&(x, y)| {
            if !y.is_finite() {
                return (x, y);
            }
            acc = w * acc + (1.0 - w) * y;
            t += 1;
            (x, acc / (1.0 - w.powi(t)))
        })
        .collect()
}

/// The smoothing weight the loss plot uses for `n` points: an averaging window of about a
/// tenth of the run, between TensorBoard's default 0.6 and 0.9 (from 100 points on), to two
/// decimals.
pub fn smoothing_weight(n: usize) -> f64 {
    ((1.0 - 10.0 / n.max(1) as f64).clamp(0.6, 0.9) * 100.0).round() / 100.0
}

/// Training loss (raw and smoothed by [`smooth_debiased`]) and validation loss against the
/// optimizer step, with axis titles, round ticks and a legend.
#[derive(Debug, Clone)]
pub struct LossCurves {
    train: Vec<(f64, f64)>,
    smoothed: Vec<(f64, f64)>,
    weight: f64,
    val: Vec<(f64, f64)>,
}

impl LossCurves {
    /// Curves of `(step, loss)` points (non-finite points are left out).
    pub fn new(train: &[(f64, f64)], val: &[(f64, f64)]) -> Self {
        let finite = |p: &[(f64, f64)]| p.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect::<Vec<_>>();
        let (train, val) = (finite(train), finite(val));
        let weight = smoothing_weight(train.len());
        Self { smoothed: smooth_debiased(&train, weight), train, weight, val }
    }

    /// The smoothed training curve.
    pub fn smoothed(&self) -> &[(f64, f64)] {
        &self.smoothed
    }

    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let all = || self.train.iter().chain(&self.val);
        let (mut x0, mut x1) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let (mut y0, mut y1) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if x1 - x0 < 1.0 {
            x1 = x0 + 1.0;
        }
        let pad = ((y1 - y0) * 0.05).max(1e-3 * y1.abs().max(1.0));
        ((x0, x1), (y0 - pad, y1 + pad))
    }
}

impl Plot for LossCurves {
    fn size(&self) -> (u32, u32) {
        (880, 500)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let ((x0, x1), (y0, y1)) = self.ranges();
        let y_step = RangedCoordf64::from(y0..y1).key_points(8usize);
        let decimals = tick_decimals(if y_step.len() > 1 { y_step[1] - y_step[0] } else { y1 - y0 });
        let y_label_w = [y0, y1].iter().map(|v| text_size(15.0, &format!("{v:.decimals$}")).0).max().unwrap_or(40);
        let mut chart = ChartBuilder::on(root)
            .caption("loss vs optimizer step", bold_font(22.0))
            .margin(18)
            .x_label_area_size(56)
            .y_label_area_size(y_label_w + 44)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        let y_format = |v: &f64| format!("{v:.decimals$}");
        // Steps are whole numbers: no more ticks than there are steps in the range.
        let x_ticks = ((x1 - x0).round() as usize + 1).clamp(2, 8);
        let x_format = |v: &f64| format!("{v:.0}");
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("loss")
            .x_labels(x_ticks)
            .y_labels(8)
            .x_label_formatter(&x_format)
            .y_label_formatter(&y_format)
            .label_style(font(15.0))
            .axis_desc_style(font(17.0))
            .light_line_style(RGBColor(240, 240, 240))
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()?;
        let raw = RGBColor(150, 190, 220);
        let smooth = RGBColor(20, 60, 120);
        let val = RGBColor(200, 80, 30);
        if !self.train.is_empty() {
            chart
                .draw_series(LineSeries::new(self.train.iter().copied(), raw.stroke_width(1)))?
                .label("train, raw")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], raw.stroke_width(2)));
            chart
                .draw_series(LineSeries::new(self.smoothed.iter().copied(), smooth.stroke_width(2)))?
                .label(format!("train, smoothed (EMA {}, debiased)", self.weight))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], smooth.stroke_width(2)));
        }
        if !self.val.is_empty() {
            chart
                .draw_series(LineSeries::new(self.val.iter().copied(), val.stroke_width(2)))?
                .label("validation")
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (24, 0)], val.stroke_width(2))
                        + Circle::new((12, 0), 4, val.filled())
                });
            chart.draw_series(self.val.iter().map(|&p| Circle::new(p, 4, val.filled())))?;
        }
        if !self.train.is_empty() || !self.val.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font(font(15.0))
                .background_style(WHITE.mix(0.9))
                .border_style(RGBColor(160, 160, 160))
                .margin(12)
                .draw()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_hit_their_ends_and_centre() {
        assert_eq!(viridis(0.0), VIRIDIS[0]);
        assert_eq!(viridis(1.0), VIRIDIS[8]);
        assert_eq!(viridis(f64::NAN), VIRIDIS[0]);
        assert_eq!(diverging(-1.0), DIVERGING[0]);
        assert_eq!(diverging(0.0), [247, 247, 247]);
        assert_eq!(diverging(1.0), DIVERGING[6]);
        assert_eq!(diverging(7.0), DIVERGING[6]);
    }

    #[test]
    fn wrap_keeps_lines_within_width() {
        let text = "XQuAD-R: mAP of Hybrid seed 42 trained on MLQA-R, query language by candidate language";
        let bold = bold_font(20.0);
        let lines = wrap(text, &bold, 300);
        assert!(lines.len() > 1);
        assert_eq!(lines.join(" "), text);
        for l in &lines {
            assert!(measure(&bold, l).0 <= 300, "{l}");
        }
        assert_eq!(wrap("", &bold, 100), vec![String::new()]);
        // Bold is registered (wider than regular), and no measure is below 0.6 em at the SVG's size.
        assert!(bold.box_size(text).unwrap().0 > font(20.0).box_size(text).unwrap().0);
        assert!(text_size(20.0, "iiii").0 >= (0.6 * 20.0 / 1.24 * 4.0) as u32);
    }

    #[test]
    fn debiased_smoothing_starts_at_the_data() {
        // A constant series is its own average from the first point on (an EMA from 0 without
        // the correction would start at (1 - w) times the value).
        let flat: Vec<(f64, f64)> = (0..5).map(|i| (i as f64, 2.0)).collect();
        for (x, y) in smooth_debiased(&flat, 0.9) {
            assert!((y - 2.0).abs() < 1e-12, "{x}: {y}");
        }
        // Two points: (0.1·a·0.9 + 0.1·b) / (1 − 0.81).
        let s = smooth_debiased(&[(0.0, 4.0), (1.0, 2.0), (2.0, f64::NAN)], 0.9);
        assert_eq!(s[0], (0.0, 4.0));
        assert!((s[1].1 - (0.36 + 0.2) / 0.19).abs() < 1e-12, "{:?}", s[1]);
        assert!(s[2].1.is_nan());
        // A falling curve: the debiased average starts on the curve, an EMA from the first
        // value is no lower, and with weight 0 nothing changes.
        let falling: Vec<(f64, f64)> = (0..50).map(|i| (i as f64, 3.0 * (-(i as f64) / 10.0).exp() + 1.0)).collect();
        let s = smooth_debiased(&falling, 0.9);
        assert_eq!(s[0].1, falling[0].1);
        assert!(s.iter().zip(&falling).all(|(a, b)| a.1 >= b.1 - 1e-12), "a causal average of a falling curve lies above it");
        assert_eq!(smooth_debiased(&falling, 0.0), falling);
    }

    #[test]
    fn smoothing_weight_grows_with_the_run() {
        assert_eq!(smoothing_weight(0), 0.6);
        assert_eq!(smoothing_weight(40), 0.75);
        assert_eq!(smoothing_weight(100), 0.9);
        assert_eq!(smoothing_weight(10_000), 0.9);
    }

    #[test]
    fn tick_decimals_follow_the_step() {
        assert_eq!(tick_decimals(0.05), 2);
        assert_eq!(tick_decimals(0.1), 1);
        assert_eq!(tick_decimals(0.02), 2);
        assert_eq!(tick_decimals(5.0), 0);
        assert_eq!(tick_decimals(0.005), 3);
    }
}
