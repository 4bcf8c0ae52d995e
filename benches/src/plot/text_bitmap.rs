//! A bitmap backend that can write: plotters' `BitMapBackend` for every
//! shape, and text rasterized here.
//!
//! plotters built without a font library (its `ttf` feature needs
//! fontconfig and freetype; its `ab_glyph` feature changes how every
//! plotters user in the workspace lays out SVG text) cannot draw text on a
//! bitmap: its fallback font panics. So this wrapper draws the labels
//! itself, with ab_glyph (pure Rust) in DejaVu Sans embedded in the binary
//! (the `dejavu` crate): a PNG needs nothing installed and looks the same
//! everywhere. Text is sized as the SVG backend sizes it (an em of
//! `size / 1.24` pixels), so both formats lay out alike.

use ab_glyph::{Font as _, FontRef, Glyph, PxScale, ScaleFont as _, point};
use anyhow::{Context as _, anyhow};
use plotters::backend::BitMapBackend;
use plotters::style::text_anchor::{HPos, VPos};
use plotters_backend::{BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind};

/// The error type of the wrapped bitmap backend.
type BitmapError = <BitMapBackend<'static> as DrawingBackend>::ErrorType;

/// `BitMapBackend` on an RGB buffer, with text drawn in DejaVu Sans.
pub(super) struct TextBitmap<'a> {
    inner: BitMapBackend<'a>,
    font: FontRef<'static>,
}

impl<'a> TextBitmap<'a> {
    /// A backend drawing into `buffer`, 3 bytes (RGB) per pixel, `size`
    /// pixels wide and high.
    pub(super) fn new(buffer: &'a mut [u8], size: (u32, u32)) -> anyhow::Result<Self> {
        let inner = BitMapBackend::with_buffer_and_format(buffer, size)
            .map_err(|e| anyhow!("cannot draw into a {}×{} bitmap: {e}", size.0, size.1))?;
        let font =
            FontRef::try_from_slice(dejavu::sans::regular()).context("the embedded DejaVu Sans font is unusable")?;
        Ok(Self { inner, font })
    }

    /// The glyph scale for a plotters font size: an em of `size / 1.24`
    /// pixels, as the SVG backend writes `font-size`.
    #[expect(clippy::cast_possible_truncation, reason = "font sizes are small; f32 is what ab_glyph takes")]
    fn scale(&self, size: f64) -> PxScale {
        let px_per_em = (size / 1.24) as f32;
        let units_per_em = self.font.units_per_em().unwrap_or(2048.0);
        PxScale::from(px_per_em * self.font.height_unscaled() / units_per_em)
    }

    /// `text` laid out on a baseline at y = 0 from x = 0 (with kerning):
    /// the glyphs, the advance width, the ascent and the descent (negative).
    fn layout(&self, text: &str, size: f64) -> (Vec<Glyph>, f32, f32, f32) {
        let font = self.font.as_scaled(self.scale(size));
        let mut glyphs = Vec::with_capacity(text.len());
        let mut x = 0.0_f32;
        let mut previous = None;
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(previous) = previous {
                x += font.kern(previous, id);
            }
            glyphs.push(id.with_scale_and_position(font.scale(), point(x, 0.0)));
            x += font.h_advance(id);
            previous = Some(id);
        }
        (glyphs, x, font.ascent(), font.descent())
    }
}

/// A pixel offset from a float, rounded (glyph boxes are a few hundred
/// pixels at most).
#[expect(clippy::cast_possible_truncation, reason = "glyph coordinates are small; `as` saturates anyway")]
fn px(value: f32) -> i32 {
    value.round() as i32
}

impl DrawingBackend for TextBitmap<'_> {
    type ErrorType = BitmapError;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<BitmapError>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<BitmapError>> {
        self.inner.present()
    }

    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Result<(), DrawingErrorKind<BitmapError>> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<BitmapError>> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<BitmapError>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<BitmapError>> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<BitmapError>> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<BitmapError>> {
        self.inner.fill_polygon(vert, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<BitmapError>> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<BitmapError>> {
        let (_, width, ascent, descent) = self.layout(text, style.size());
        let to_u32 = |v: f32| u32::try_from(px(v.ceil()).max(0)).unwrap_or(0);
        Ok((to_u32(width), to_u32(ascent - descent)))
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<BitmapError>> {
        let colour = style.color();
        if colour.alpha <= 0.0 {
            return Ok(());
        }
        let (glyphs, width, ascent, descent) = self.layout(text, style.size());
        let anchor = style.anchor();
        let dx = match anchor.h_pos {
            HPos::Left => 0.0,
            HPos::Center => -width / 2.0,
            HPos::Right => -width,
        };
        let height = ascent - descent;
        let top = match anchor.v_pos {
            VPos::Top => 0.0,
            VPos::Center => -height / 2.0,
            VPos::Bottom => -height,
        };
        let baseline = top + ascent;
        let transform = style.transform();
        let font = self.font.as_scaled(self.scale(style.size()));
        let inner = &mut self.inner;
        for mut glyph in glyphs {
            glyph.position = point(glyph.position.x + dx, baseline);
            let Some(outline) = font.outline_glyph(glyph) else { continue };
            let bounds = outline.px_bounds();
            let (left, top) = (px(bounds.min.x), px(bounds.min.y));
            let mut result = Ok(());
            outline.draw(|gx, gy, coverage| {
                if result.is_err() || coverage <= 0.0 {
                    return;
                }
                let x = left.saturating_add(i32::try_from(gx).unwrap_or(i32::MAX));
                let y = top.saturating_add(i32::try_from(gy).unwrap_or(i32::MAX));
                let (x, y) = transform.transform(x, y);
                let ink = BackendColor { alpha: colour.alpha * f64::from(coverage.min(1.0)), rgb: colour.rgb };
                result = inner.draw_pixel((pos.0.saturating_add(x), pos.1.saturating_add(y)), ink);
            });
            result?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use plotters::prelude::{BLACK, IntoDrawingArea as _, IntoFont as _, Text, WHITE};
    use plotters::style::Color as _;

    use super::*;

    const SIZE: (u32, u32) = (200, 60);

    /// Dark pixels (any channel below 128) in an RGB buffer.
    fn inked(buffer: &[u8]) -> usize {
        buffer.chunks_exact(3).filter(|p| p.iter().any(|&c| c < 128)).count()
    }

    #[test]
    fn text_is_drawn_in_ink_and_sized_like_svg() {
        let mut buffer = vec![0_u8; 200 * 60 * 3];
        {
            let backend = TextBitmap::new(&mut buffer, SIZE).unwrap();
            let style = ("sans-serif", 20.0).into_font().color(&BLACK);
            let (w, h) = backend.estimate_text_size("half-width µs", &style).unwrap();
            // DejaVu Sans at a 16-pixel em: about 0.6 em per character, 1.16 em high.
            assert!((90..150).contains(&w) && (15..23).contains(&h), "{w}×{h}");
            let area = backend.into_drawing_area();
            area.fill(&WHITE).unwrap();
            let font = ("sans-serif", 20.0).into_font().color(&BLACK);
            area.draw(&Text::new("half-width µs", (10, 20), font)).unwrap();
        }
        let ink = inked(&buffer);
        assert!(ink > 100, "{ink} dark pixels");
        let mut blank = vec![0_u8; 200 * 60 * 3];
        {
            let area = TextBitmap::new(&mut blank, SIZE).unwrap().into_drawing_area();
            area.fill(&WHITE).unwrap();
            area.draw(&Text::new("invisible", (10, 20), ("sans-serif", 20.0).into_font().color(&BLACK.mix(0.0))))
                .unwrap();
        }
        assert_eq!(inked(&blank), 0);
    }

    #[test]
    fn a_too_small_buffer_is_an_error_not_a_panic() {
        let mut buffer = vec![0_u8; 10];
        assert!(TextBitmap::new(&mut buffer, SIZE).is_err());
    }
}
