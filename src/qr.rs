//! QR codes of link URLs, for in-person verification (feature `qr`).
//!
//! [`svg()`] gives a self-contained SVG document to inline in a page; [`png()`] gives a PNG image to
//! download or print. Both encode the text as given, with error correction level M (about 15%
//! of the symbol can be damaged), dark modules on white, and the four-module quiet zone that
//! readers need.
//!
//! # Examples
//!
//! ```
//! use magic_link::qr;
//!
//! let url = "https://verify.example.com/l/AQAAAAE";
//! let svg = qr::svg(url)?;
//! assert!(svg.starts_with("<svg"));
//! let png = qr::png(url)?;
//! assert!(png.starts_with(b"\x89PNG"));
//! # Ok::<(), qr::QrError>(())
//! ```

use std::fmt::Write as _;

use qrcode::{Color, EcLevel, QrCode};

/// The longest text encoded, in bytes. Link URLs are far shorter; a level-M code holds at most
/// 2331 bytes.
pub const MAX_TEXT_LEN: usize = 2048;

/// The width of the quiet zone around the symbol, in modules.
const QUIET_ZONE: usize = 4;

/// The pixels per module of [`png()`].
pub const DEFAULT_PNG_SCALE: u32 = 8;

/// The largest pixels per module accepted by [`png_scaled`].
pub const MAX_PNG_SCALE: u32 = 32;

/// Why a QR code could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QrError {
    /// The text is empty.
    #[error("the text to encode is empty")]
    Empty,
    /// The text is longer than [`MAX_TEXT_LEN`] bytes.
    #[error("the text to encode is longer than {max} bytes")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// A scale of zero or more than [`MAX_PNG_SCALE`] pixels per module.
    #[error("the scale must be 1 to {max} pixels per module")]
    InvalidScale {
        /// The limit.
        max: u32,
    },
    /// The encoder refused the text.
    #[error("the text cannot be encoded as a QR code")]
    Encode(#[source] qrcode::types::QrError),
    /// The PNG encoder failed.
    #[error("the PNG image could not be written")]
    Png(#[source] ::png::EncodingError),
}

/// The QR code of `text` (a link URL) as an SVG document: one `<path>` of dark modules on a
/// white background, one user unit per module, scaled by the page (`width`/`height` are not
/// set; style them). Safe to inline in HTML: it contains no text from the input.
///
/// # Errors
///
/// [`QrError::Empty`], [`QrError::TooLong`] or [`QrError::Encode`].
pub fn svg(text: &str) -> Result<String, QrError> {
    let matrix = Matrix::encode(text)?;
    let size = matrix.width + 2 * QUIET_ZONE;
    let mut out = String::with_capacity(256 + matrix.dark_count() * 14);
    // `write!` to a `String` cannot fail.
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" \
         shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"QR code\">\
         <rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/><path fill=\"#000\" d=\""
    );
    for y in 0..matrix.width {
        for x in 0..matrix.width {
            if matrix.is_dark(x, y) {
                let _ = write!(out, "M{} {}h1v1h-1z", x + QUIET_ZONE, y + QUIET_ZONE);
            }
        }
    }
    out.push_str("\"/></svg>");
    Ok(out)
}

/// The QR code of `text` (a link URL) as a PNG image, black on white, 8 pixels per module.
///
/// # Errors
///
/// As [`png_scaled`].
pub fn png(text: &str) -> Result<Vec<u8>, QrError> {
    png_scaled(text, DEFAULT_PNG_SCALE)
}

/// The QR code of `text` as a 1-bit grayscale PNG image with `scale` pixels per module.
///
/// # Errors
///
/// [`QrError::Empty`], [`QrError::TooLong`], [`QrError::InvalidScale`], [`QrError::Encode`],
/// or [`QrError::Png`].
pub fn png_scaled(text: &str, scale: u32) -> Result<Vec<u8>, QrError> {
    if scale == 0 || scale > MAX_PNG_SCALE {
        return Err(QrError::InvalidScale { max: MAX_PNG_SCALE });
    }
    let matrix = Matrix::encode(text)?;
    let modules = matrix.width + 2 * QUIET_ZONE;
    // At most (177 + 8) * 32 = 5920 pixels a side: no overflow.
    let side = modules * scale as usize;
    let row_bytes = side.div_ceil(8);
    let mut pixels = vec![0u8; row_bytes * side];
    for (py, row) in pixels.chunks_exact_mut(row_bytes).enumerate() {
        let my = py / scale as usize;
        for px in 0..side {
            let mx = px / scale as usize;
            let dark = (QUIET_ZONE..QUIET_ZONE + matrix.width).contains(&mx)
                && (QUIET_ZONE..QUIET_ZONE + matrix.width).contains(&my)
                && matrix.is_dark(mx - QUIET_ZONE, my - QUIET_ZONE);
            if !dark {
                // In 1-bit grayscale, 1 is white.
                row[px / 8] |= 0x80 >> (px % 8);
            }
        }
    }
    let side = u32::try_from(side).map_err(|_| QrError::InvalidScale { max: MAX_PNG_SCALE })?;
    let mut out = Vec::new();
    let mut encoder = ::png::Encoder::new(&mut out, side, side);
    encoder.set_color(::png::ColorType::Grayscale);
    encoder.set_depth(::png::BitDepth::One);
    encoder.set_compression(::png::Compression::High);
    let mut writer = encoder.write_header().map_err(QrError::Png)?;
    writer.write_image_data(&pixels).map_err(QrError::Png)?;
    writer.finish().map_err(QrError::Png)?;
    Ok(out)
}

/// The symbol's modules, without quiet zone.
struct Matrix {
    width: usize,
    colors: Vec<Color>,
}

impl Matrix {
    fn encode(text: &str) -> Result<Self, QrError> {
        if text.is_empty() {
            return Err(QrError::Empty);
        }
        if text.len() > MAX_TEXT_LEN {
            return Err(QrError::TooLong { max: MAX_TEXT_LEN });
        }
        let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
            .map_err(QrError::Encode)?;
        Ok(Self {
            width: code.width(),
            colors: code.to_colors(),
        })
    }

    fn is_dark(&self, x: usize, y: usize) -> bool {
        self.colors[y * self.width + x] == Color::Dark
    }

    fn dark_count(&self) -> usize {
        self.colors.iter().filter(|c| **c == Color::Dark).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_input_with_typed_errors() {
        assert!(matches!(svg(""), Err(QrError::Empty)));
        assert!(matches!(png(""), Err(QrError::Empty)));
        let long = "a".repeat(MAX_TEXT_LEN + 1);
        assert!(matches!(svg(&long), Err(QrError::TooLong { .. })));
        assert!(matches!(
            png_scaled("x", 0),
            Err(QrError::InvalidScale { .. })
        ));
        assert!(matches!(
            png_scaled("x", MAX_PNG_SCALE + 1),
            Err(QrError::InvalidScale { .. })
        ));
        // The longest accepted text still fits a level-M symbol.
        let longest = "\u{7f}".repeat(MAX_TEXT_LEN);
        assert!(svg(&longest).is_ok());
    }

    #[test]
    fn svg_has_quiet_zone_and_no_input_text() {
        let out = svg("https://verify.example.com/l/<script>").unwrap();
        assert!(out.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 "));
        assert!(out.ends_with("\"/></svg>"));
        assert!(!out.contains("script"));
        // Version 3 (29 modules) plus 2 * 4 quiet-zone modules.
        assert!(out.contains("viewBox=\"0 0 37 37\""), "{out}");
        // The top-left finder pattern starts at the quiet zone.
        assert!(out.contains("d=\"M4 4h1v1h-1z"));
    }

    #[test]
    fn png_sizes() {
        let out = png_scaled("https://verify.example.com/l/x", 1).unwrap();
        assert!(out.starts_with(b"\x89PNG\r\n\x1a\n"));
        // IHDR width and height: 29 + 8 modules at one pixel each.
        assert_eq!(&out[16..24], &[0, 0, 0, 37, 0, 0, 0, 37]);
        assert!(png("x").unwrap().len() < 1024);
    }
}
