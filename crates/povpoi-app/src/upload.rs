//! An image upload read as it arrives: `POST /api/image`, the existing system's multipart
//! form of one raw RGB file named `image_<W>x<H>.rgb` (shared/spec section 2). The form is
//! parsed piece by piece (nostd-multipart) and the pixels go to storage as they come
//! ([`Storage::begin_blob`]), so a board never holds an image: a platform feeds the body
//! through [`App::upload_step`] in pieces of any size, then calls [`App::finish_upload`].
//!
//! The file name's rules, the form's fields and the answer are [`crate::content`]'s, which
//! a node runs over the whole body it takes (and converts pictures, which a board does not).

use alloc::string::String;
use alloc::vec::Vec;

use nostd_multipart::{Event, Parser, content_disposition};
use povpoi_core::sync::{Replica, Storage};

use crate::api::{ApiError, Request, Response};
use crate::app::{App, Now};
use crate::content;

/// Where images are uploaded.
pub const UPLOAD_PATH: &str = "/api/image";

/// Longest part header line read (a `Content-Disposition` with a file name is about 80).
const LINE: usize = 256;
/// Most headers of one form part.
const PART_HEADERS: usize = 8;
/// Longest text field kept, in bytes.
const MAX_FIELD_BYTES: usize = 256;
/// Form bytes allowed beside the pixels: part headers, boundaries and text fields.
const FORM_OVERHEAD_BYTES: usize = 4 * 1024;

/// The form part being read.
enum Part {
    /// The image file: its size from its name, and the bytes that came.
    File,
    /// A text field this poi reads, and its bytes so far.
    Field(Field, Vec<u8>),
    /// A field it does not use (a form's submit button, say).
    Ignored,
}

/// The text fields of the node's form.
#[derive(Clone, Copy)]
enum Field {
    Name,
    /// `flipH`, `flipV`, `contrast`: the node's converter options.
    Flag(&'static str),
    Rotate,
}

/// The file of the form: its name, the size that name carries, and the bytes that came.
struct File {
    filename: String,
    size: (u32, u32),
    expected: usize,
    received: usize,
}

/// An upload being read ([`App::begin_upload`]); `'b` is the request's `Content-Type`,
/// which holds the form's boundary.
pub struct Upload<'b> {
    parser: Parser<'b, LINE, PART_HEADERS>,
    /// The next part's field and file name, from its headers.
    field: Option<String>,
    filename: Option<String>,
    part: Part,
    file: Option<File>,
    name: Option<String>,
    /// Body bytes taken, and the most the body may hold.
    taken: usize,
    limit: usize,
}

impl Upload<'_> {
    /// Whether the form ended (its closing boundary came).
    pub fn finished(&self) -> bool {
        self.parser.is_finished()
    }

    /// Bytes of input a platform hands [`App::upload_step`] at least at once (the
    /// boundary's lookahead); a 1 KiB buffer does.
    pub fn min_buffer(&self) -> usize {
        self.parser.min_buffer()
    }
}

fn malformed(e: nostd_multipart::Error) -> ApiError {
    content::malformed_form(e)
}

/// A form parameter's decoded text, or the 400 naming it.
fn text(value: nostd_multipart::ParamValue<'_>, what: &str) -> Result<String, ApiError> {
    String::from_utf8(value.bytes().collect()).map_err(|_| content::not_text(what))
}

impl<S: Storage> App<S> {
    /// Starts reading the upload `request` announces (its body comes through
    /// [`App::upload_step`]): the caller must hold the group's key where there is one, and
    /// send a multipart form no longer than the largest image this poi takes
    /// ([`crate::Config::max_uploaded_image_bytes`]) and its fields.
    /// While a message of its own sessions is in flight the upload is refused (503, try
    /// again), and while an upload is read its sessions send nothing: a board's heap holds
    /// one or the other beside its library. One upload at a time: a second is refused
    /// (503) until the first is stored or given up ([`App::abandon_upload`], which a
    /// platform calls however the reading ends).
    pub fn begin_upload<'b>(&mut self, request: &Request<'b>) -> Result<Upload<'b>, Response> {
        self.authorize(request)?;
        if request.method != "POST" {
            return Err(ApiError::not_allowed().response());
        }
        if self.exchanging {
            return Err(ApiError::new(503, "busy with its own sync: try again").response());
        }
        if self.uploading {
            return Err(
                ApiError::new(503, "another image is being uploaded here: try again when it is stored").response()
            );
        }
        let content_type = request.header("content-type").ok_or_else(|| content::not_a_form().response())?;
        let form = content_type.len() >= 19 && content_type[..19].eq_ignore_ascii_case(b"multipart/form-data");
        let parser = Parser::from_content_type(content_type)
            .ok()
            .filter(|_| form)
            .ok_or_else(|| content::not_a_form().response())?;
        let limit = self.config().max_uploaded_image_bytes + FORM_OVERHEAD_BYTES;
        self.uploading = true;
        Ok(Upload { parser, field: None, filename: None, part: Part::Ignored, file: None, name: None, taken: 0, limit })
    }

    /// Reads the next bytes of an upload's body: as many of `input` as it can (the count
    /// is returned; hand the rest again with more after it), `eof` once the body ended.
    /// A refusal has given up the upload: nothing of it is kept.
    pub fn upload_step(&mut self, upload: &mut Upload<'_>, input: &[u8], eof: bool) -> Result<usize, Response> {
        self.read_form(upload, input, eof).map_err(|e| {
            self.abandon_upload();
            e.response()
        })
    }

    fn read_form(&mut self, upload: &mut Upload<'_>, input: &[u8], eof: bool) -> Result<usize, ApiError> {
        let mut used = 0;
        while !upload.finished() {
            let (consumed, event) = upload.parser.parse(&input[used..], eof).map_err(malformed)?;
            used += consumed;
            upload.taken += consumed;
            if upload.taken > upload.limit {
                return Err(ApiError::new(
                    413,
                    alloc::format!(
                        "upload too large: this poi takes images up to {} bytes",
                        self.config().max_uploaded_image_bytes
                    ),
                ));
            }
            let Some(event) = event else { break };
            match event {
                Event::PartStart => (upload.field, upload.filename) = (None, None),
                Event::Header { name, value } if name.eq_ignore_ascii_case(b"content-disposition") => {
                    let disposition = content_disposition(value).map_err(malformed)?;
                    upload.field = disposition.name().map(|n| text(n, "field name")).transpose()?;
                    upload.filename = disposition.filename().map(|n| text(n, "file name")).transpose()?;
                }
                Event::Header { .. } => {}
                Event::HeadersEnd => upload.part = self.open_part(upload)?,
                Event::Data(bytes) => match &mut upload.part {
                    Part::File => {
                        let Some(file) = &mut upload.file else { continue };
                        let room = file.expected.saturating_sub(file.received);
                        // Past its size the file is counted, not kept: the refusal says how long it was.
                        if room > 0 {
                            self.storage_mut().write_blob(&bytes[..bytes.len().min(room)])?;
                        }
                        file.received += bytes.len();
                    }
                    Part::Field(_, value) => {
                        if value.len() + bytes.len() > MAX_FIELD_BYTES {
                            let name = upload.field.as_deref().unwrap_or_default();
                            return Err(ApiError::bad_request(alloc::format!("the {name} field is too long")));
                        }
                        value.extend_from_slice(bytes);
                    }
                    Part::Ignored => {}
                },
                Event::PartEnd => {
                    if let Part::Field(field, value) = core::mem::replace(&mut upload.part, Part::Ignored) {
                        let name = upload.field.as_deref().unwrap_or_default();
                        let value =
                            String::from_utf8(value).map_err(|_| content::not_text(&alloc::format!("{name} field")))?;
                        match field {
                            Field::Name => upload.name = Some(value),
                            Field::Flag(flag) => {
                                if content::form_flag(flag, &value)? {
                                    return Err(cannot_convert());
                                }
                            }
                            Field::Rotate if value.trim() == "0" => {}
                            Field::Rotate => return Err(cannot_convert()),
                        }
                    }
                }
                Event::Finished => {}
            }
        }
        Ok(used)
    }

    /// What the part whose headers just ended is: the file (checked, and its storage
    /// begun), a field this poi reads, or one it ignores.
    fn open_part(&mut self, upload: &mut Upload<'_>) -> Result<Part, ApiError> {
        // A browser sends a file input left empty as a part with an empty file name.
        let Some(filename) = upload.filename.take().filter(|name| !name.is_empty()) else {
            let field = match upload.field.as_deref() {
                Some("name") => Field::Name,
                Some("flipH") => Field::Flag("flipH"),
                Some("flipV") => Field::Flag("flipV"),
                Some("contrast") => Field::Flag("contrast"),
                Some("rotate") => Field::Rotate,
                _ => return Ok(Part::Ignored),
            };
            return Ok(Part::Field(field, Vec::new()));
        };
        if upload.file.is_some() {
            return Err(content::one_file_only());
        }
        content::check_upload_filename(&filename)?;
        if !filename.to_ascii_lowercase().ends_with(".rgb") {
            return Err(ApiError::new(
                415,
                alloc::format!(
                    "{filename}: this poi takes raw RGB files named image_<width>x<height>.rgb; convert a picture \
                     first (`povpoi convert`), or upload it to a node, which converts it and syncs it here"
                ),
            ));
        }
        let size = content::image_size(&filename)?;
        let expected = size.0 as usize * size.1 as usize * 3;
        let most = self.config().max_uploaded_image_bytes;
        if expected > most {
            return Err(ApiError::new(
                413,
                alloc::format!(
                    "image {}x{} is {expected} bytes: this poi stores images up to {most} bytes (400x32 is 38400); \
                     a node takes up to 400x64",
                    size.0,
                    size.1
                ),
            ));
        }
        self.storage_mut().begin_blob(expected)?;
        upload.file = Some(File { filename, size, expected, received: 0 });
        Ok(Part::File)
    }

    /// Ends an upload whose body ended: the image is added and plays (mode 1), or the
    /// refusal says why and nothing of it is kept.
    pub fn finish_upload(&mut self, upload: Upload<'_>, now: Now) -> Response {
        self.uploading = false;
        match self.store_upload(upload, now) {
            Ok(stored) => Response::json(200, &stored),
            Err(e) => {
                self.storage_mut().abandon_blob();
                e.response()
            }
        }
    }

    fn store_upload(&mut self, upload: Upload<'_>, now: Now) -> Result<content::ImageStored, ApiError> {
        if !upload.finished() {
            return Err(malformed(nostd_multipart::Error::UnexpectedEof));
        }
        let Some(file) = upload.file else {
            return Err(content::no_file());
        };
        if file.received != file.expected {
            return Err(content::wrong_length(file.received, file.size.0, file.size.1));
        }
        let name = content::upload_name(upload.name, &file.filename);
        content::check_name(&name)?;
        let hash = self.storage_mut().finish_blob()?;
        self.edit(now, |poi: &mut Replica<S>, cue| {
            let (width, height) = file.size;
            let add = |poi: &mut Replica<S>, name: &str| poi.add_stored_image(name, width, height, hash, now.wall_ms());
            content::add_image(poi, name, file.size, add, now.wall_ms(), cue)
        })
    }

    /// Gives up an upload whose body never ended (its connection closed): nothing of it
    /// is kept.
    pub fn abandon_upload(&mut self) {
        self.uploading = false;
        self.storage_mut().abandon_blob();
    }

    /// `POST /api/image` with the whole body in hand: the same steps over it at once.
    pub(crate) fn upload_whole(&mut self, request: &Request<'_>, now: Now) -> Response {
        let mut upload = match self.begin_upload(request) {
            Ok(upload) => upload,
            Err(refusal) => return refusal,
        };
        let mut at = 0;
        while !upload.finished() {
            match self.upload_step(&mut upload, &request.body[at..], true) {
                Ok(0) => break,
                Ok(used) => at += used,
                Err(refusal) => return refusal,
            }
        }
        self.finish_upload(upload, now)
    }
}

/// The 400 of a converter option asked of a poi that converts nothing.
fn cannot_convert() -> ApiError {
    ApiError::bad_request(
        "this poi cannot flip, rotate or stretch an image's contrast: convert it first (`povpoi convert`), or upload \
         it to a node",
    )
}
