//! Language × language heatmaps (SVG or PNG, drawn by `plotters`): the mAP matrix of one model,
//! and the difference of two models' matrices.
//!
//! Rows are query languages, columns candidate languages; each cell shows its value. Cells
//! without a value (no answerable query) are grey and marked "–".
//!
//! - [`heatmap_svg`] / [`Heatmap::absolute`]: viridis fitted to the data's range (rounded out
//!   to 0.01), so the spread between 0.55 and 0.83 shows instead of one green band; the colour
//!   bar beside the grid gives the scale with round ticks.
//! - [`difference_heatmap_svg`] / [`Heatmap::difference`]: a diverging scale centred at 0
//!   (white) and symmetric (±the largest absolute difference): blue below 0, red above.
//!   [`matrix_difference`] builds its values from two reports' matrices.
//!
//! The canvas grows with the labels, the title is wrapped to the canvas width, and the layout
//! is measured with the font the text is set in, so no text leaves the canvas.

use plotters::coord::Shift;
use plotters::coord::ranged1d::Ranged;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;

use crate::plot::{self, DrawResult, Plot};

/// How values map to colours.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HeatmapScale {
    /// Viridis from `low` to `high`.
    Sequential {
        /// Value drawn darkest.
        low: f64,
        /// Value drawn brightest.
        high: f64,
    },
    /// Blue (−`limit`) – white (0) – red (+`limit`).
    Diverging {
        /// Largest absolute value of the scale.
        limit: f64,
    },
}

impl HeatmapScale {
    /// Viridis over the finite values' range, rounded out to 0.01 (a range narrower than 0.02
    /// is widened around its middle).
    pub fn fitted(values: &[Vec<Option<f64>>]) -> Self {
        let finite = || values.iter().flatten().flatten().copied().filter(|v| v.is_finite());
        let (lo, hi) = finite().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if lo > hi {
            return Self::Sequential { low: 0.0, high: 1.0 };
        }
        let (mut low, mut high) = ((lo * 100.0).floor() / 100.0, (hi * 100.0).ceil() / 100.0);
        if high - low < 0.02 {
            let mid = (low + high) / 2.0;
            (low, high) = (mid - 0.01, mid + 0.01);
        }
        Self::Sequential { low, high }
    }

    /// Symmetric diverging scale: ± the largest absolute finite value, rounded up to the next
    /// 0.005 (at least 0.005).
    pub fn symmetric(values: &[Vec<Option<f64>>]) -> Self {
        let max = values.iter().flatten().flatten().copied().filter(|v| v.is_finite()).fold(0.0f64, |m, v| m.max(v.abs()));
        Self::Diverging { limit: ((max / 0.005).ceil() * 0.005).max(0.005) }
    }

    /// Lowest and highest value of the scale.
    pub fn range(&self) -> (f64, f64) {
        match *self {
            Self::Sequential { low, high } => (low, high),
            Self::Diverging { limit } => (-limit, limit),
        }
    }

    /// Colour of `v` (clamped to the range).
    pub fn colour(&self, v: f64) -> [u8; 3] {
        match *self {
            Self::Sequential { low, high } => plot::viridis((v - low) / (high - low)),
            Self::Diverging { limit } => plot::diverging(v / limit),
        }
    }

    fn label(&self, v: f64, decimals: usize) -> String {
        match self {
            Self::Sequential { .. } => format!("{v:.decimals$}"),
            // No "-0.00" and no "+0.00": zero is plain.
            Self::Diverging { .. } if v.abs() < 0.5 * 10f64.powi(-(decimals as i32)) => format!("{:.decimals$}", 0.0),
            Self::Diverging { .. } => format!("{v:+.decimals$}"),
        }
    }
}

fn title_font() -> plotters::style::FontDesc<'static> {
    plot::bold_font(TITLE)
}

/// A language × language heatmap; [`Plot::svg`] and [`Plot::png`] render it.
#[derive(Debug, Clone)]
pub struct Heatmap {
    labels: Vec<String>,
    values: Vec<Vec<Option<f64>>>,
    scale: HeatmapScale,
    legend: String,
    layout: Layout,
}

const TITLE: f64 = 20.0;
const LABEL: f64 = 16.0;
const AXIS: f64 = 16.0;
const CELL_TEXT: f64 = 14.0;
const TICK: f64 = 15.0;
const MARGIN: i32 = 14;
const BAR_WIDTH: i32 = 20;

/// Pixel positions, measured once from the labels and the title.
#[derive(Debug, Clone)]
struct Layout {
    width: u32,
    height: u32,
    title_lines: Vec<String>,
    line_height: i32,
    /// Top-left corner of the grid and a cell's side.
    grid: (i32, i32),
    cell: i32,
    /// Left edge of the colour bar; ticks and their labels go right of it.
    bar_x: i32,
    bar_h: i32,
    /// Centre of the colour bar's (vertical) caption.
    legend_x: i32,
    ticks: Vec<f64>,
    tick_decimals: usize,
}

impl Heatmap {
    /// The mAP matrix `values[row][col]` of one model (rows: query languages, columns: candidate
    /// languages, both `labels`), on viridis fitted to the values ([`HeatmapScale::fitted`]).
    pub fn absolute(title: &str, labels: &[String], values: &[Vec<Option<f64>>]) -> Self {
        Self::new(title, labels, values, HeatmapScale::fitted(values), "mAP")
    }

    /// A difference of two mAP matrices (see [`matrix_difference`]) on a diverging scale centred
    /// at 0 ([`HeatmapScale::symmetric`]).
    pub fn difference(title: &str, labels: &[String], values: &[Vec<Option<f64>>]) -> Self {
        Self::new(title, labels, values, HeatmapScale::symmetric(values), "mAP difference")
    }

    /// Any matrix on any scale; `legend` names the values beside the colour bar.
    pub fn new(title: &str, labels: &[String], values: &[Vec<Option<f64>>], scale: HeatmapScale, legend: &str) -> Self {
        let layout = Layout::measure(title, labels, values, &scale, legend);
        Self { labels: labels.to_vec(), values: values.to_vec(), scale, legend: legend.into(), layout }
    }

    /// The colour scale.
    pub fn scale(&self) -> HeatmapScale {
        self.scale
    }

    fn cell_text(&self, v: Option<f64>) -> String {
        match (v, self.scale) {
            (Some(v), HeatmapScale::Diverging { .. }) => self.scale.label(v, 3),
            (Some(v), _) => format!("{v:.3}"),
            (None, _) => "–".into(),
        }
    }
}

impl Layout {
    fn measure(title: &str, labels: &[String], values: &[Vec<Option<f64>>], scale: &HeatmapScale, legend: &str) -> Self {
        let n = labels.len() as i32;
        let label_w = labels.iter().map(|l| plot::text_size(LABEL, l).0 as i32).max().unwrap_or(0);
        let text_h = |size: f64| plot::text_size(size, "Ag").1 as i32;
        let cell_text_w =
            values.iter().flatten().map(|v| plot::text_size(CELL_TEXT, &format!("{:+.3}", v.unwrap_or(0.0))).0 as i32).max();
        let cell = 58.max(label_w + 10).max(cell_text_w.unwrap_or(0) + 10);
        let grid_side = cell * n;

        // Colour bar ticks: plotters' round key points of the scale's range.
        let (low, high) = scale.range();
        let ticks = plotters::coord::types::RangedCoordf64::from(low..high).key_points(8usize);
        let step = if ticks.len() > 1 { ticks[1] - ticks[0] } else { high - low };
        let tick_decimals = plot::tick_decimals(step);
        let tick_w = ticks.iter().map(|&t| plot::text_size(TICK, &scale.label(t, tick_decimals)).0 as i32).max().unwrap_or(0);

        let axis_h = text_h(AXIS);
        let left = MARGIN + axis_h + 10 + label_w + 8;
        let bar_x = left + grid_side + 30;
        let legend_x = bar_x + BAR_WIDTH + 10 + tick_w + 12 + axis_h / 2;
        let min_width = legend_x + axis_h / 2 + MARGIN;
        let legend_w = plot::text_size(AXIS, legend).0 as i32;
        // Wide enough for the axis title over the grid and a title of a few words a line.
        let width = min_width.max(left + plot::text_size(AXIS, "candidate language").0 as i32 + MARGIN).max(520);
        let title_lines = plot::wrap(title, &title_font(), (width - 2 * MARGIN) as u32);
        let line_height = text_h(TITLE) + 6;
        let top = MARGIN + line_height * title_lines.len() as i32 + 12 + axis_h + 8 + text_h(LABEL) + 8;
        // The colour bar: as tall as the grid, and tall enough for its caption and for the
        // query-language axis title.
        let rows_w = plot::text_size(AXIS, "query language").0 as i32;
        let bar_h = grid_side.max(legend_w + 10).max(rows_w + 10).max(160);
        let height = (top + bar_h + MARGIN + 6) as u32;
        Self {
            width: width as u32,
            height,
            title_lines,
            line_height,
            grid: (left, top),
            cell,
            bar_x,
            bar_h,
            legend_x,
            ticks,
            tick_decimals,
        }
    }
}

impl Plot for Heatmap {
    fn size(&self) -> (u32, u32) {
        (self.layout.width, self.layout.height)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let l = &self.layout;
        let (gx, gy) = l.grid;
        let cell = l.cell;
        let n = self.labels.len() as i32;
        let style = |size: f64, h: HPos, v: VPos| plot::font(size).color(&BLACK).pos(Pos::new(h, v));

        let title = title_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Top));
        for (i, line) in l.title_lines.iter().enumerate() {
            root.draw(&Text::new(line.as_str(), (MARGIN, MARGIN + l.line_height * i as i32), title.clone()))?;
        }

        // Axis titles: candidate languages over the columns, query languages left of the rows.
        let axis_h = plot::text_size(AXIS, "Ag").1 as i32;
        let label_h = plot::text_size(LABEL, "Ag").1 as i32;
        let columns_y = gy - 8 - label_h - 8 - axis_h / 2;
        // Centred on the grid, or as near as the canvas allows when the grid is smaller.
        let half = |text: &str| plot::text_size(AXIS, text).0 as i32 / 2 + 2;
        let columns_x = (gx + cell * n / 2).max(gx + half("candidate language"));
        root.draw(&Text::new("candidate language", (columns_x, columns_y), style(AXIS, HPos::Center, VPos::Center)))?;
        let rows = (MARGIN + axis_h / 2, (gy + cell * n / 2).max(gy + half("query language")));
        let rotated = style(AXIS, HPos::Center, VPos::Center).transform(FontTransform::Rotate270);
        root.draw(&Text::new("query language", rows, rotated))?;

        for (i, label) in self.labels.iter().enumerate() {
            let c = gx + cell * i as i32 + cell / 2;
            root.draw(&Text::new(label.as_str(), (c, gy - 8 - label_h / 2), style(LABEL, HPos::Center, VPos::Center)))?;
            let r = gy + cell * i as i32 + cell / 2;
            root.draw(&Text::new(label.as_str(), (gx - 8, r), style(LABEL, HPos::Right, VPos::Center)))?;
        }

        for (i, row) in self.values.iter().enumerate().take(n as usize) {
            for (j, v) in row.iter().enumerate().take(n as usize) {
                let (x, y) = (gx + cell * j as i32, gy + cell * i as i32);
                let fill = match v {
                    Some(v) if v.is_finite() => self.scale.colour(*v),
                    _ => [200, 200, 200],
                };
                let colour = RGBColor(fill[0], fill[1], fill[2]);
                root.draw(&Rectangle::new([(x + 1, y + 1), (x + cell - 1, y + cell - 1)], colour.filled()))?;
                let ink = plot::ink_on(fill);
                let text = plot::font(CELL_TEXT).color(&ink).pos(Pos::new(HPos::Center, VPos::Center));
                root.draw(&Text::new(self.cell_text(*v), (x + cell / 2, y + cell / 2), text))?;
            }
        }

        // Colour bar: high values at the top.
        let (low, high) = self.scale.range();
        let bar_top = gy;
        let bar_h = l.bar_h;
        let y_of = |v: f64| bar_top + ((high - v) / (high - low) * bar_h as f64).round() as i32;
        let bands = 96;
        for k in 0..bands {
            let (y0, y1) = (bar_top + bar_h * k / bands, bar_top + bar_h * (k + 1) / bands);
            let v = high - (k as f64 + 0.5) / bands as f64 * (high - low);
            let [r, g, b] = self.scale.colour(v);
            root.draw(&Rectangle::new([(l.bar_x, y0), (l.bar_x + BAR_WIDTH, y1)], RGBColor(r, g, b).filled()))?;
        }
        root.draw(&Rectangle::new([(l.bar_x, bar_top), (l.bar_x + BAR_WIDTH, bar_top + bar_h)], BLACK.stroke_width(1)))?;
        for &t in &l.ticks {
            let y = y_of(t);
            root.draw(&PathElement::new(vec![(l.bar_x + BAR_WIDTH, y), (l.bar_x + BAR_WIDTH + 6, y)], BLACK))?;
            let label = self.scale.label(t, l.tick_decimals);
            root.draw(&Text::new(label, (l.bar_x + BAR_WIDTH + 10, y), style(TICK, HPos::Left, VPos::Center)))?;
        }
        let legend = style(AXIS, HPos::Center, VPos::Center).transform(FontTransform::Rotate90);
        root.draw(&Text::new(self.legend.as_str(), (l.legend_x, bar_top + bar_h / 2), legend))?;
        Ok(())
    }
}

/// SVG of the mAP matrix `values[row][col]` labelled by `labels` ([`Heatmap::absolute`]).
pub fn heatmap_svg(title: &str, labels: &[String], values: &[Vec<Option<f64>>]) -> String {
    Heatmap::absolute(title, labels, values).svg()
}

/// PNG of the mAP matrix ([`Heatmap::absolute`]).
pub fn heatmap_png(title: &str, labels: &[String], values: &[Vec<Option<f64>>]) -> Vec<u8> {
    Heatmap::absolute(title, labels, values).png()
}

/// SVG of a difference matrix on a diverging scale centred at 0 ([`Heatmap::difference`]).
pub fn difference_heatmap_svg(title: &str, labels: &[String], values: &[Vec<Option<f64>>]) -> String {
    Heatmap::difference(title, labels, values).svg()
}

/// PNG of a difference matrix ([`Heatmap::difference`]).
pub fn difference_heatmap_png(title: &str, labels: &[String], values: &[Vec<Option<f64>>]) -> Vec<u8> {
    Heatmap::difference(title, labels, values).png()
}

/// `a − b` cell by cell, over the languages both matrices have (in `a`'s order); a cell is
/// `None` when either side is.
pub fn matrix_difference(
    a_labels: &[String],
    a: &[Vec<Option<f64>>],
    b_labels: &[String],
    b: &[Vec<Option<f64>>],
) -> (Vec<String>, Vec<Vec<Option<f64>>>) {
    let shared: Vec<(usize, usize)> =
        a_labels.iter().enumerate().filter_map(|(i, l)| b_labels.iter().position(|m| m == l).map(|j| (i, j))).collect();
    let cell = |m: &[Vec<Option<f64>>], r: usize, c: usize| m.get(r).and_then(|row| row.get(c)).copied().flatten();
    let values = shared
        .iter()
        .map(|&(ai, bi)| {
            shared.iter().map(|&(aj, bj)| Some(cell(a, ai, aj)? - cell(b, bi, bj)?)).collect()
        })
        .collect();
    (shared.iter().map(|&(i, _)| a_labels[i].clone()).collect(), values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitted_scale_rounds_out_to_hundredths() {
        let v = vec![vec![Some(0.553), Some(0.829)], vec![None, Some(0.7)]];
        assert_eq!(HeatmapScale::fitted(&v), HeatmapScale::Sequential { low: 0.55, high: 0.83 });
        assert_eq!(HeatmapScale::fitted(&[vec![None]]), HeatmapScale::Sequential { low: 0.0, high: 1.0 });
        let one = HeatmapScale::fitted(&[vec![Some(0.5)]]);
        assert_eq!(one.range(), (0.49, 0.51));
    }

    #[test]
    fn symmetric_scale_covers_the_largest_difference() {
        let v = vec![vec![Some(-0.012), Some(0.031)]];
        let HeatmapScale::Diverging { limit } = HeatmapScale::symmetric(&v) else { panic!() };
        assert!((limit - 0.035).abs() < 1e-12, "{limit}");
        assert_eq!(HeatmapScale::symmetric(&[vec![Some(0.0)]]), HeatmapScale::Diverging { limit: 0.005 });
    }

    #[test]
    fn difference_aligns_languages() {
        let a_labels = vec!["de".to_string(), "en".to_string(), "fr".to_string()];
        let a = vec![
            vec![Some(0.5), Some(0.4), Some(0.3)],
            vec![Some(0.6), Some(0.9), None],
            vec![Some(0.1), Some(0.2), Some(0.3)],
        ];
        let b_labels = vec!["en".to_string(), "de".to_string()];
        let b = vec![vec![Some(0.8), Some(0.5)], vec![Some(0.4), Some(0.45)]];
        let (labels, d) = matrix_difference(&a_labels, &a, &b_labels, &b);
        assert_eq!(labels, ["de", "en"]);
        let r = |x: Option<f64>| x.map(|x| (x * 1000.0).round() / 1000.0);
        assert_eq!(d.iter().map(|row| row.iter().map(|&x| r(x)).collect::<Vec<_>>()).collect::<Vec<_>>(), vec![
            vec![Some(0.05), Some(0.0)],
            vec![Some(0.1), Some(0.1)]
        ]);
        let (_, d) = matrix_difference(&a_labels, &a, &a_labels, &a);
        assert_eq!(d[1][2], None);
    }

    #[test]
    fn tick_labels_of_a_diverging_scale_are_signed() {
        let s = HeatmapScale::Diverging { limit: 0.05 };
        assert_eq!(s.label(0.02, 2), "+0.02");
        assert_eq!(s.label(-0.02, 2), "-0.02");
        assert_eq!(s.label(-1e-17, 2), "0.00");
    }
}
