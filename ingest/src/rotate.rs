//! Rotation metadata: phones and some cameras store pictures sideways and say so in a display
//! matrix (MP4 `tkhd` matrix, the `rotate` tag). Frames are turned upright the way the ffmpeg
//! CLI's autorotate does: 90° → transpose clockwise, 180° → both flips, 270° → counter-clockwise.

use ffmpeg_next::{codec::packet::side_data::Type as SideDataType, format::Pixel, frame};

/// How far a picture must be turned clockwise to be shown upright.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rotation {
    #[default]
    None,
    Cw90,
    Cw180,
    Cw270,
}

impl Rotation {
    /// Whether width and height trade places.
    pub fn swaps_size(self) -> bool {
        matches!(self, Rotation::Cw90 | Rotation::Cw270)
    }

    pub fn degrees(self) -> u32 {
        match self {
            Rotation::None => 0,
            Rotation::Cw90 => 90,
            Rotation::Cw180 => 180,
            Rotation::Cw270 => 270,
        }
    }

    /// The nearest quarter turn to `deg` clockwise degrees (any sign, any number of turns).
    pub fn from_degrees(deg: f64) -> Rotation {
        if !deg.is_finite() {
            return Rotation::None;
        }
        match ((deg / 90.0).round() as i64).rem_euclid(4) {
            1 => Rotation::Cw90,
            2 => Rotation::Cw180,
            3 => Rotation::Cw270,
            _ => Rotation::None,
        }
    }

    /// `(w, h)` as shown after turning.
    pub fn apply_size(self, (w, h): (u32, u32)) -> (u32, u32) {
        if self.swaps_size() { (h, w) } else { (w, h) }
    }
}

/// The clockwise display rotation stored in a 3×3 display matrix (nine native-endian `i32`,
/// 16.16 fixed point for the 2×2 part), as FFmpeg's `av_display_rotation_get` reads it and
/// the ffmpeg CLI applies it. Anything that is not a 36-byte matrix gives `None`. A mirrored
/// matrix keeps its rotation; the mirror itself is not undone.
pub fn rotation_from_display_matrix(bytes: &[u8]) -> Rotation {
    if bytes.len() < 36 {
        return Rotation::None;
    }
    let m = |i: usize| {
        let b: [u8; 4] = bytes[i * 4..i * 4 + 4].try_into().expect("4 bytes");
        i32::from_ne_bytes(b) as f64 / 65536.0
    };
    let scale0 = m(0).hypot(m(3));
    let scale1 = m(1).hypot(m(4));
    if scale0 == 0.0 || scale1 == 0.0 {
        return Rotation::None;
    }
    // av_display_rotation_get returns the negation of this angle (counter-clockwise) and the
    // CLI's get_rotation negates it back: this is the clockwise turn to apply.
    let cw = (m(1) / scale1).atan2(m(0) / scale0).to_degrees();
    Rotation::from_degrees(cw)
}

/// The rotation a stream's display matrix side data asks for (`None` without one).
pub fn stream_rotation(stream: &ffmpeg_next::format::stream::Stream) -> Rotation {
    stream
        .side_data()
        .find(|sd| sd.kind() == SideDataType::DisplayMatrix)
        .map_or(Rotation::None, |sd| rotation_from_display_matrix(sd.data()))
}

/// Turns one plane of `w`×`h` pixels of `bpp` bytes (rows `src_stride` apart) into `dst`
/// (rows `dst_stride` apart, sized for the turned plane).
pub fn rotate_plane(
    src: &[u8],
    src_stride: usize,
    (w, h): (usize, usize),
    bpp: usize,
    rot: Rotation,
    dst: &mut [u8],
    dst_stride: usize,
) {
    for y in 0..h {
        let row = &src[y * src_stride..y * src_stride + w * bpp];
        for x in 0..w {
            let (dx, dy) = match rot {
                Rotation::None => (x, y),
                Rotation::Cw90 => (h - 1 - y, x),
                Rotation::Cw180 => (w - 1 - x, h - 1 - y),
                Rotation::Cw270 => (y, w - 1 - x),
            };
            let d = dy * dst_stride + dx * bpp;
            dst[d..d + bpp].copy_from_slice(&row[x * bpp..x * bpp + bpp]);
        }
    }
}

/// Bytes per pixel and chroma subsampling shift of the packed/planar 8-bit formats the
/// encoders produce; `None` for anything else.
fn layout(format: Pixel) -> Option<(usize, u32)> {
    match format {
        Pixel::RGB24 | Pixel::BGR24 => Some((3, 0)),
        Pixel::YUV420P | Pixel::YUVJ420P => Some((1, 1)),
        Pixel::YUV444P | Pixel::YUVJ444P | Pixel::GRAY8 => Some((1, 0)),
        _ => None,
    }
}

/// `src` turned by `rot` into `dst` (allocated here when its size or format does not fit).
/// Supports RGB24/BGR24, YUV(J) 4:2:0 and 4:4:4 and GRAY8; returns false for other formats.
pub fn rotate_frame(src: &frame::Video, rot: Rotation, dst: &mut frame::Video) -> bool {
    let Some((bpp, shift)) = layout(src.format()) else {
        return false;
    };
    let (w, h) = rot.apply_size((src.width(), src.height()));
    if dst.format() != src.format() || dst.width() != w || dst.height() != h {
        *dst = frame::Video::new(src.format(), w, h);
    }
    for plane in 0..src.planes() {
        let (pw, ph) = if plane == 0 {
            (src.width() as usize, src.height() as usize)
        } else {
            let sub = |n: u32| n.div_ceil(1 << shift) as usize;
            (sub(src.width()), sub(src.height()))
        };
        let src_stride = src.stride(plane);
        let dst_stride = dst.stride(plane);
        rotate_plane(
            src.data(plane),
            src_stride,
            (pw, ph),
            bpp,
            rot,
            dst.data_mut(plane),
            dst_stride,
        );
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(a: f64, b: f64, c: f64, d: f64) -> Vec<u8> {
        let fx = |v: f64| ((v * 65536.0).round() as i32).to_ne_bytes();
        let mut out = Vec::new();
        for v in [fx(a), fx(b), [0; 4], fx(c), fx(d), [0; 4], [0; 4], [0; 4]] {
            out.extend_from_slice(&v);
        }
        out.extend_from_slice(&(1i32 << 30).to_ne_bytes());
        out
    }

    #[test]
    fn display_matrices_of_the_rotate_tag() {
        // av_display_rotation_get of this matrix is −90 (counter-clockwise degrees): the
        // ffmpeg CLI turns it clockwise. (FFmpeg 5.1 writes `-metadata:s:v rotate=90` as the
        // opposite matrix, shown counter-clockwise; tests/rotation.rs checks that case.)
        assert_eq!(
            rotation_from_display_matrix(&matrix(0.0, 1.0, -1.0, 0.0)),
            Rotation::Cw90
        );
        assert_eq!(
            rotation_from_display_matrix(&matrix(-1.0, 0.0, 0.0, -1.0)),
            Rotation::Cw180
        );
        assert_eq!(
            rotation_from_display_matrix(&matrix(0.0, -1.0, 1.0, 0.0)),
            Rotation::Cw270
        );
        assert_eq!(
            rotation_from_display_matrix(&matrix(1.0, 0.0, 0.0, 1.0)),
            Rotation::None
        );
        assert_eq!(rotation_from_display_matrix(&[0; 8]), Rotation::None);
        assert_eq!(rotation_from_display_matrix(&[0; 36]), Rotation::None);
    }

    #[test]
    fn degrees_round_to_quarter_turns() {
        assert_eq!(Rotation::from_degrees(89.6), Rotation::Cw90);
        assert_eq!(Rotation::from_degrees(-90.0), Rotation::Cw270);
        assert_eq!(Rotation::from_degrees(450.0), Rotation::Cw90);
        assert_eq!(Rotation::from_degrees(f64::NAN), Rotation::None);
        assert_eq!(Rotation::Cw270.apply_size((4, 2)), (2, 4));
    }

    #[test]
    fn planes_turn_clockwise() {
        // 3×2:  a b c      90° cw:  d a     180°:  f e d    270°: c f
        //       d e f               e b            c b a          b e
        //                           f c                           a d
        let src = b"abcdef";
        let turn = |rot: Rotation| {
            let (w, h) = rot.apply_size((3, 2));
            let mut dst = vec![b'.'; (w * h) as usize];
            rotate_plane(src, 3, (3, 2), 1, rot, &mut dst, w as usize);
            String::from_utf8(dst).unwrap()
        };
        assert_eq!(turn(Rotation::None), "abcdef");
        assert_eq!(turn(Rotation::Cw90), "daebfc");
        assert_eq!(turn(Rotation::Cw180), "fedcba");
        assert_eq!(turn(Rotation::Cw270), "cfbead");
    }

    #[test]
    fn frames_with_odd_sizes_and_chroma() {
        let mut src = frame::Video::new(Pixel::YUV420P, 5, 3);
        for p in 0..3 {
            let stride = src.stride(p);
            let (w, h) = if p == 0 { (5, 3) } else { (3, 2) };
            for y in 0..h {
                for x in 0..w {
                    src.data_mut(p)[y * stride + x] = (p * 100 + y * 10 + x) as u8;
                }
            }
        }
        let mut dst = frame::Video::empty();
        assert!(rotate_frame(&src, Rotation::Cw90, &mut dst));
        assert_eq!((dst.width(), dst.height()), (3, 5));
        // Luma (x, y) lands at (h-1-y, x); chroma likewise on its 3×2 plane.
        assert_eq!(dst.data(0)[dst.stride(0) * 4 + 2], 4); // src (4, 0)
        assert_eq!(dst.data(1)[dst.stride(1) * 2], 100 + 10 + 2); // src (2, 1)
        let mut bad = frame::Video::new(Pixel::NV12, 4, 4);
        assert!(!rotate_frame(
            &frame::Video::new(Pixel::NV12, 4, 4),
            Rotation::Cw90,
            &mut bad
        ));
    }
}
