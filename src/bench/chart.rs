//! The PNG chart of one workload, drawn with plotters: throughput against
//! threads (log scale: 4, 8, 16, 32), one line per contender family, the
//! single SQL thread and `mariadb-binlog | mariadb` as dashed reference
//! lines.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use super::report::ConfigResult;

/// Where Debian and most distributions keep a sans-serif TrueType font.
const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Registers the font once per process; the error says what to install.
fn font() -> Result<(), String> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let bytes = FONTS
            .iter()
            .find_map(|p| std::fs::read(p).ok())
            .ok_or_else(|| {
                format!(
                    "the charts need the DejaVu Sans font (Debian: apt-get install \
                     fonts-dejavu-core); looked in {}",
                    FONTS.join(", ")
                )
            })?;
        // plotters keeps the font for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| "the DejaVu Sans font file is not a valid TrueType font".to_owned())
    })
    .clone()
}

/// Draws `results` to the PNG file `path` under `title`.
pub fn draw(path: &Path, title: &str, results: &[ConfigResult]) -> Result<(), String> {
    font()?;
    let err = |e: &dyn std::fmt::Debug| format!("drawing {}: {e:?}", path.display());
    let root = BitMapBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let top = results
        .iter()
        .map(|r| r.transactions_per_second)
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(75)
        .build_cartesian_2d(1.8f64..5.2f64, 0.0..top)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("threads (SQL threads or parapply workers)")
        .y_desc("transactions/s")
        .x_labels(40)
        .x_label_formatter(&|x| {
            let r = x.round();
            if (x - r).abs() < 1e-6 {
                format!("{}", 1u32 << (r as u32))
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .light_line_style(WHITE)
        .draw()
        .map_err(|e| err(&e))?;

    let mut families: Vec<&str> = Vec::new();
    for r in results {
        if !families.contains(&r.family.as_str()) {
            families.push(&r.family);
        }
    }
    for (i, family) in families.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let mut points: Vec<(f64, f64)> = results
            .iter()
            .filter(|r| r.family == *family)
            .filter_map(|r| Some((f64::from(r.threads?).log2(), r.transactions_per_second)))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let style = ShapeStyle::from(&color).stroke_width(2);
        let label = family.to_string();
        if points.is_empty() {
            // A single-connection contender: a dashed horizontal line.
            let Some(tps) = results
                .iter()
                .find(|r| r.family == *family)
                .map(|r| r.transactions_per_second)
            else {
                continue;
            };
            chart
                .draw_series(DashedLineSeries::new([(1.8, tps), (5.2, tps)], 8, 6, style))
                .map_err(|e| err(&e))?
                .label(label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
        } else {
            chart
                .draw_series(LineSeries::new(points.clone(), style))
                .map_err(|e| err(&e))?
                .label(label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 4, style.filled())))
                .map_err(|e| err(&e))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
