//! The crate's QR codes decode back to the link URL with an independent decoder (rqrr).

use magic_link::qr;

/// Decodes a PNG (any bit depth, grayscale or colour) to luma and reads every QR code in it.
fn decode_png(bytes: &[u8]) -> Vec<String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    // Expand 1-bit grayscale to 8-bit, palettes to RGB.
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().expect("a valid PNG header");
    let mut buf = vec![0; reader.output_buffer_size().expect("a sane size")];
    let info = reader.next_frame(&mut buf).expect("a valid PNG frame");
    let channels = info.color_type.samples();
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let (w, h) = (info.width as usize, info.height as usize);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
        buf[y * info.line_size + x * channels]
    });
    img.detect_grids()
        .into_iter()
        .map(|grid| grid.decode().expect("a readable QR code").1)
        .collect()
}

#[test]
fn png_decodes_to_the_url() {
    for url in [
        "http://127.0.0.1:3000/l/AQAAAAGp3fT1v8kz0Hh6Wm0Y0yq3AAAAAAAAAAAJ5y9dRk0ZJvXgU0l5mQmR1A",
        "https://verify.example.com/l/x",
        "https://verify.example.com/l/ÄÖÜ?utm_source=mail&x=<1>",
    ] {
        for scale in [2, qr::DEFAULT_PNG_SCALE] {
            let png = qr::png_scaled(url, scale).unwrap();
            assert_eq!(decode_png(&png), vec![url.to_owned()], "scale {scale}");
        }
    }
}

#[test]
fn svg_and_png_are_the_same_symbol() {
    // The SVG's path and the 1-pixel PNG describe the same modules.
    let url = "https://verify.example.com/l/AQAAAAE";
    let svg = qr::svg(url).unwrap();
    let png = qr::png_scaled(url, 1).unwrap();
    let mut decoder = png::Decoder::new(std::io::Cursor::new(&png[..]));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let mut dark_in_png = Vec::new();
    for y in 0..info.height as usize {
        for x in 0..info.width as usize {
            if buf[y * info.line_size + x] == 0 {
                dark_in_png.push(format!("M{x} {y}h1v1h-1z"));
            }
        }
    }
    let path = svg.split("d=\"").nth(1).unwrap().split('"').next().unwrap();
    assert_eq!(path, dark_in_png.concat());
}
