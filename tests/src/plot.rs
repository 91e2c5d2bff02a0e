//! Line charts as hand-written SVG, so a benchmark tool can leave a picture of its run
//! without a plotting dependency: time on x, series on y from zero (a chart that starts
//! at the minimum makes a 1 % drift look like a leak), shaded bands for periods (an
//! attack), dashed vertical marks for events (a restart), labelled axes.

use std::fmt::Write;

/// One line.
pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub points: Vec<(f64, f64)>,
}

/// A shaded period on the x axis.
pub struct Band {
    pub from: f64,
    pub to: f64,
    pub color: &'static str,
}

/// A chart; `render` draws it into a box of the document.
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// The x axis runs from 0 to this.
    pub x_max: f64,
    pub series: Vec<Series>,
    pub bands: Vec<Band>,
    /// Dashed vertical lines.
    pub marks: Vec<f64>,
}

/// Room around the plot area for the title, tick labels and axis labels.
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 44.0;

impl Chart {
    /// The chart as an SVG group filling the box at (`x`, `y`) of `w` × `h`.
    pub fn render(&self, x: f64, y: f64, w: f64, h: f64) -> String {
        let (pw, ph) = (w - LEFT - RIGHT, h - TOP - BOTTOM);
        let x_max = self.x_max.max(f64::MIN_POSITIVE);
        let top = self.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0, f64::max);
        let y_ticks = ticks(top * 1.05, 5);
        let y_max = y_ticks.last().copied().unwrap_or(1.0).max(f64::MIN_POSITIVE);
        let px = |v: f64| LEFT + v.clamp(0.0, x_max) / x_max * pw;
        let py = |v: f64| TOP + ph - v.clamp(0.0, y_max) / y_max * ph;

        let mut g = format!("<g transform=\"translate({x},{y})\" font-family=\"sans-serif\" font-size=\"11\">\n");
        let _ = writeln!(
            g,
            "<text x=\"{LEFT}\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{}</text>",
            esc(&self.title)
        );
        for b in &self.bands {
            let (x0, x1) = (px(b.from), px(b.to));
            let _ = writeln!(
                g,
                "<rect x=\"{x0:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{ph}\" fill=\"{}\" fill-opacity=\"0.25\"/>",
                (x1 - x0).max(1.0),
                b.color
            );
        }
        for t in &y_ticks {
            let yy = py(*t);
            let _ = writeln!(
                g,
                "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                LEFT + pw,
                LEFT - 6.0,
                yy + 4.0,
                number(*t)
            );
        }
        for t in ticks(x_max, 10).into_iter().filter(|t| *t <= x_max * 1.001) {
            let xx = px(t);
            let _ = writeln!(
                g,
                "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#444\"/><text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                TOP + ph,
                TOP + ph + 4.0,
                TOP + ph + 16.0,
                number(t)
            );
        }
        for m in &self.marks {
            let xx = px(*m);
            let _ = writeln!(
                g,
                "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{TOP}\" y2=\"{:.1}\" stroke=\"#555\" stroke-dasharray=\"4 3\"/>",
                TOP + ph
            );
        }
        for s in &self.series {
            let pts: Vec<String> = s.points.iter().map(|(a, b)| format!("{:.1},{:.1}", px(*a), py(*b))).collect();
            let _ = writeln!(
                g,
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.3\" points=\"{}\"/>",
                s.color,
                pts.join(" ")
            );
        }
        let _ = writeln!(
            g,
            "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#444\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n\
             <text transform=\"translate(16,{:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
            LEFT + pw / 2.0,
            h - 8.0,
            esc(&self.x_label),
            TOP + ph / 2.0,
            esc(&self.y_label)
        );
        // The series' names, right of the title.
        let mut lx = LEFT + 300.0;
        for s in &self.series {
            let ly = 16.0;
            let _ = writeln!(
                g,
                "<line x1=\"{lx:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{}\" stroke-width=\"2\"/><text x=\"{:.1}\" y=\"{ly:.1}\">{}</text>",
                lx + 18.0,
                ly - 4.0,
                ly - 4.0,
                s.color,
                lx + 24.0,
                esc(&s.name)
            );
            lx += 40.0 + 6.5 * s.name.len() as f64;
        }
        g.push_str("</g>\n");
        g
    }
}

/// What a legend entry shows beside its name.
pub enum Swatch {
    /// A band's shade.
    Fill(&'static str),
    /// A mark's dashed line.
    Dashed,
}

/// A legend row at (`x`, `y`), wrapping at `width`.
pub fn legend(items: &[(String, Swatch)], x: f64, y: f64, width: f64) -> String {
    let mut g = format!("<g font-family=\"sans-serif\" font-size=\"11\" transform=\"translate({x},{y})\">\n");
    let (mut cx, mut cy) = (0.0, 0.0);
    for (name, swatch) in items {
        let w = 30.0 + 7.0 * name.len() as f64;
        if cx + w > width && cx > 0.0 {
            (cx, cy) = (0.0, cy + 16.0);
        }
        let _ = match swatch {
            Swatch::Fill(color) => write!(
                g,
                "<rect x=\"{cx:.1}\" y=\"{:.1}\" width=\"14\" height=\"10\" fill=\"{color}\" fill-opacity=\"0.5\"/>",
                cy - 9.0
            ),
            Swatch::Dashed => write!(
                g,
                "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#555\" stroke-dasharray=\"4 3\"/>",
                cx + 7.0,
                cx + 7.0,
                cy - 11.0,
                cy + 2.0
            ),
        };
        let _ = writeln!(g, "<text x=\"{:.1}\" y=\"{cy:.1}\">{}</text>", cx + 18.0, esc(name));
        cx += w;
    }
    g.push_str("</g>\n");
    g
}

/// A whole SVG document around `body`.
pub fn document(width: f64, height: f64, body: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{body}</svg>\n"
    )
}

/// Round tick values from 0 to at least `max`, about `n` of them (steps of 1, 2 or 5 × 10^k).
pub fn ticks(max: f64, n: usize) -> Vec<f64> {
    if max <= 0.0 || !max.is_finite() {
        return vec![0.0, 1.0];
    }
    let raw = max / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let count = (max / step).ceil() as usize;
    (0..=count).map(|i| i as f64 * step).collect()
}

/// A tick label: no trailing `.0`, one decimal when needed.
fn number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 { format!("{}", v.round() as i64) } else { format!("{v:.1}") }
}

/// Text as SVG character data.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_maximum() {
        assert_eq!(ticks(9.5, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(60.0, 10), vec![0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]);
        assert_eq!(ticks(0.0, 5), vec![0.0, 1.0]);
        assert!(*ticks(1234.0, 5).last().unwrap() >= 1234.0);
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}
