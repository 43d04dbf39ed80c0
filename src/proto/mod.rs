//! jhack's peer-to-peer wire format: length-prefixed frames and versioned postcard messages.
//! Pure: no I/O, no clocks; any input yields a value or an error, never a panic.
//!
//! A connection's control stream carries frames ([`encode_frame`], [`FrameDecoder`])
//! whose payloads are, first, one [`Hello`] from each side (settled with
//! [`negotiate`]) and then [`Message`]s (a type this build does not know is skipped:
//! [`decode_message_lenient`]). Every other stream starts with a [`StreamKind`]; a
//! blob stream's is followed by one framed [`FetchRequest`] answered by one framed
//! [`FetchReply`]. Datagrams start with a kind byte ([`datagram_kind`]). Moving the
//! bytes is another module's job.

mod frame;
mod message;

pub use frame::{FrameDecoder, FrameError, MAX_FRAME, encode_frame};
pub use message::{
    Decoded, FetchBatchRequest, FetchReply, FetchRequest, GROUP_LEN, Hello, MAGIC, MAX_BATCH,
    MAX_BLOB, MAX_CHANNELS, MAX_FEATURE_BODY, MAX_FEATURES, MAX_GAIN_DB, MAX_NAME, MAX_SAMPLE_RATE,
    MAX_TEXT, MESSAGE_KINDS, MIN_GAIN_DB, MIN_PROTOCOL_VERSION, Message, PROTOCOL_VERSION,
    PlayOutcome, PlayRequest, ProtoError, Refusal, SoundOffer, StreamKind, datagram_kind,
    decode_fetch_batch_request, decode_fetch_reply, decode_fetch_request, decode_hello,
    decode_message, decode_message_lenient, encode, feature_kind, negotiate,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SoundId;

    /// Writes each value as one frame.
    fn send<T: serde::Serialize>(values: &[T], out: &mut Vec<u8>) {
        for v in values {
            encode_frame(&encode(v).unwrap(), out).unwrap();
        }
    }

    #[test]
    fn a_control_stream_conversation_through_the_public_api() {
        let mut wire = Vec::new();
        send(&[Hello::new("jhack 0.1.0", "alice", 7)], &mut wire);
        let play = Message::Play(PlayRequest {
            trigger: 1,
            sound: SoundOffer {
                id: SoundId([3; 32]),
                size: 48_000,
                name: "airhorn".into(),
                format: "flac".into(),
                frames: 96_000,
                sample_rate: 48_000,
                channels: 2,
                loudness_lufs: Some(-14.5),
            },
            gain_db: -6.0,
        });
        send(&[play.clone(), Message::Bye], &mut wire);

        let mut dec = FrameDecoder::new(MAX_FRAME);
        for chunk in wire.chunks(5) {
            dec.push(chunk);
        }
        let hello = decode_hello(&dec.next_frame().unwrap().unwrap()).unwrap();
        assert_eq!(hello.name, "alice");
        assert_eq!(
            negotiate(MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, &hello),
            Ok(PROTOCOL_VERSION)
        );
        assert_eq!(
            decode_message(&dec.next_frame().unwrap().unwrap()),
            Ok(play)
        );
        assert_eq!(
            decode_message(&dec.next_frame().unwrap().unwrap()),
            Ok(Message::Bye)
        );
        assert_eq!(dec.next_frame(), Ok(None));
        dec.finish().unwrap();
    }

    #[test]
    fn a_blob_stream_opening_through_the_public_api() {
        let mut wire = Vec::new();
        send(
            &[FetchRequest {
                id: SoundId([9; 32]),
                from_group: 2,
            }],
            &mut wire,
        );
        send(
            &[FetchReply::Ready {
                size: 200_000,
                group_len: GROUP_LEN,
            }],
            &mut wire,
        );
        let mut dec = FrameDecoder::new(MAX_FRAME);
        dec.push(&wire);
        let request = decode_fetch_request(&dec.next_frame().unwrap().unwrap()).unwrap();
        assert_eq!(request.from_group, 2);
        let reply = decode_fetch_reply(&dec.next_frame().unwrap().unwrap()).unwrap();
        assert!(matches!(reply, FetchReply::Ready { size: 200_000, .. }));
    }
}
