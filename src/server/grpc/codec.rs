//! The protobuf codec of every generated service and client: prost's, except
//! that a message that cannot be decoded is a `ValidationException`
//! (`INVALID_ARGUMENT` with its `ErrorInfo`, through the one mapping in
//! [`super::status`]) instead of tonic's bare `INTERNAL`. A request that is
//! not a well-formed message of its method's type is a bad parameter, as
//! API.md says; nothing in kmsd failed.

use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::ProstCodec;

use crate::error::KmsError;

/// [`ProstCodec`] with decoding failures mapped as the module says.
#[derive(Debug, Clone)]
pub struct KmsCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for KmsCodec<T, U> {
    fn default() -> Self {
        Self(ProstCodec::default())
    }
}

impl<T, U> Codec for KmsCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = KmsDecoder<<ProstCodec<T, U> as Codec>::Decoder>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        KmsDecoder(self.0.decoder())
    }
}

/// Prost's decoder, its failures made `ValidationException`.
#[derive(Debug, Clone)]
pub struct KmsDecoder<D>(D);

impl<D: Decoder<Error = Status>> Decoder for KmsDecoder<D> {
    type Item = D::Item;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        self.0.decode(buf).map_err(|s| {
            // prost's message names the field and the wire problem, never
            // a field's value.
            Status::from(KmsError::validation(format!(
                "the message is not a well-formed protobuf message of its type: {}",
                s.message()
            )))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
