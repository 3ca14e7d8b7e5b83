//! cic's resource model: types, validation rules and error codes. No I/O.

pub mod edge;
pub mod error;
pub mod resource;
pub mod validate;

pub use error::{ApiError, ApiResult, Code};
