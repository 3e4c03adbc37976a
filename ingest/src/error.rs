use std::path::PathBuf;

/// Everything that can go wrong while making a sample video or ingesting a file.
///
/// `Display` is one line naming the file and the reason; the FFmpeg or I/O cause, when there
/// is one, is the [`std::error::Error::source`] (print it with `{:#}` in `anyhow`).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("invalid ingest configuration: {0}")]
    Config(String),
    #[error("{}: cannot read the file", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: empty file (0 bytes)", path.display())]
    Empty { path: PathBuf },
    #[error(
        "{}: not a media file FFmpeg can read (not video, corrupt, or truncated before its index)",
        path.display()
    )]
    NotMedia {
        path: PathBuf,
        #[source]
        source: ffmpeg_next::Error,
    },
    #[error("{}: has no video stream", path.display())]
    NoVideoStream { path: PathBuf },
    #[error("{}: the video stream holds no frame", path.display())]
    NoFrames { path: PathBuf },
    #[error("{}: no decoder for video codec {codec}", path.display())]
    UnsupportedCodec { path: PathBuf, codec: String },
    #[error("{}: corrupt video data after {:.3} s", path.display(), *at_us as f64 / 1e6)]
    Corrupt {
        path: PathBuf,
        at_us: i64,
        #[source]
        source: Option<ffmpeg_next::Error>,
    },
    #[error(
        "{}: truncated: video data ends at {:.3} s but the container says {:.3} s",
        path.display(), *decoded_us as f64 / 1e6, *expected_us as f64 / 1e6
    )]
    Truncated {
        path: PathBuf,
        decoded_us: i64,
        expected_us: i64,
    },
    #[error("{}: FFmpeg failed while {during}", path.display())]
    Ffmpeg {
        path: PathBuf,
        during: &'static str,
        #[source]
        source: ffmpeg_next::Error,
    },
    #[error("{}: JPEG encoding failed", path.display())]
    Jpeg {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
    #[error("{}: cannot load the photo", path.display())]
    Photo {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
    #[error("{tool} not found: {hint}")]
    MissingTool { tool: String, hint: &'static str },
    #[error("{}: publishing chunk {chunk_id} failed", path.display())]
    Publish {
        path: PathBuf,
        chunk_id: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl IngestError {
    pub(crate) fn ffmpeg(
        path: &std::path::Path,
        during: &'static str,
    ) -> impl FnOnce(ffmpeg_next::Error) -> IngestError {
        let path = path.to_path_buf();
        move |source| IngestError::Ffmpeg {
            path,
            during,
            source,
        }
    }
}
