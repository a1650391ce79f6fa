//! Errors in Docker's shape: `{"message": "..."}` with Docker's status codes — 404 for a missing
//! container, image, network or volume, 409 for a conflict (name in use, removing a running
//! container, a volume in use), 400 for a bad parameter, 500 only for a real server fault.

use engine::container::ContainerError;
use engine::image::store::ImageError;
use engine::volume::store::VolumeError;
use netcore::network::NetworkError;

/// An error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Docker's `message`.
    pub message: String,
}

impl ApiError {
    /// 400 with `message`.
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            message: message.into(),
        }
    }

    /// 404 with `message`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 404,
            message: message.into(),
        }
    }

    /// 409 with `message`.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 409,
            message: message.into(),
        }
    }

    /// 500 with `message`.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 500,
            message: message.into(),
        }
    }

    /// The body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "message": self.message })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

fn status_of_image(e: &ImageError) -> u16 {
    match e {
        ImageError::NotFound(_) => 404,
        ImageError::InUse { .. }
        | ImageError::ReferenceInUse { .. }
        | ImageError::MultipleTags { .. } => 409,
        ImageError::Ambiguous(_) | ImageError::Reference(_) => 400,
        _ => 500,
    }
}

fn status_of_volume(e: &VolumeError) -> u16 {
    match e {
        VolumeError::NotFound(_) => 404,
        VolumeError::InUse { .. } => 409,
        VolumeError::Name(_) => 400,
        _ => 500,
    }
}

fn status_of_network(e: &NetworkError) -> u16 {
    match e {
        NetworkError::NoSuchNetwork(_) => 404,
        NetworkError::Exists(_) | NetworkError::Conflict(_) | NetworkError::NotAttached { .. } => {
            409
        }
        NetworkError::Invalid(_) | NetworkError::Ipam(_) => 400,
        _ => 500,
    }
}

impl From<ContainerError> for ApiError {
    fn from(e: ContainerError) -> ApiError {
        let status = match &e {
            ContainerError::NotFound(_) | ContainerError::NoSuchExec(_) => 404,
            ContainerError::Ambiguous(_)
            | ContainerError::Invalid(_)
            | ContainerError::Mount(_) => 400,
            ContainerError::NameInUse { .. } | ContainerError::Conflict(_) => 409,
            // Docker's NotImplemented.
            ContainerError::NoLog => 501,
            ContainerError::Image(i) => status_of_image(i),
            ContainerError::Volume(v) => status_of_volume(v),
            ContainerError::Network(n) => status_of_network(n),
            // The runtime refused what the user asked (a command it cannot run, a port taken).
            ContainerError::Exec { .. }
            | ContainerError::PortProxy(_)
            | ContainerError::Shim(_) => 400,
            _ => 500,
        };
        let message = match &e {
            ContainerError::Image(ImageError::NotFound(name)) => {
                format!("No such image: {name}")
            }
            _ => e.to_string(),
        };
        ApiError { status, message }
    }
}

impl From<ImageError> for ApiError {
    fn from(e: ImageError) -> ApiError {
        let message = match &e {
            ImageError::NotFound(name) => format!("No such image: {name}"),
            _ => e.to_string(),
        };
        ApiError {
            status: status_of_image(&e),
            message,
        }
    }
}

impl From<berth_api::filters::FilterError> for ApiError {
    fn from(e: berth_api::filters::FilterError) -> ApiError {
        ApiError::bad(e.0)
    }
}

impl From<VolumeError> for ApiError {
    fn from(e: VolumeError) -> ApiError {
        ApiError {
            status: status_of_volume(&e),
            message: e.to_string(),
        }
    }
}

impl From<NetworkError> for ApiError {
    fn from(e: NetworkError) -> ApiError {
        ApiError {
            status: status_of_network(&e),
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_status_codes() {
        let nf: ApiError = ContainerError::NotFound("web".into()).into();
        assert_eq!(
            (nf.status, nf.message.as_str()),
            (404, "No such container: web")
        );
        let dup: ApiError = ContainerError::NameInUse {
            name: "web".into(),
            id: "abc".into(),
        }
        .into();
        assert_eq!(dup.status, 409);
        let img: ApiError = ContainerError::Image(ImageError::NotFound("bb:2".into())).into();
        assert_eq!(
            (img.status, img.message.as_str()),
            (404, "No such image: bb:2")
        );
        let bad: ApiError = ContainerError::Invalid("bad -v".into()).into();
        assert_eq!(bad.status, 400);
        assert_eq!(bad.body()["message"], "bad -v");
        let vol: ApiError = VolumeError::InUse {
            name: "v".into(),
            users: "c".into(),
        }
        .into();
        assert_eq!(vol.status, 409);
        let net: ApiError = NetworkError::NoSuchNetwork("n".into()).into();
        assert_eq!(net.status, 404);
    }
}
