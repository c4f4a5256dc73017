//! Valid inputs the mutator starts from, made here in code so the campaigns need no files:
//! a small GGUF model, WAV files of every common layout, images in each format Baton reads,
//! the documented config, protocol lines of both workers, API bodies, a task template,
//! cron expressions, documents (Markdown, code, a PDF with a text layer), an eval set and
//! a CTranslate2 model file.

use fastrand::Rng;
use std::io::Cursor;

/// A GGUF v3 file with the metadata of a tiny llama model and two f32 tensors.
pub fn gguf() -> Vec<Vec<u8>> {
    fn text(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    fn key(out: &mut Vec<u8>, name: &str, kind: u32) {
        text(out, name);
        out.extend_from_slice(&kind.to_le_bytes());
    }
    const U32: u32 = 4;
    const F32: u32 = 6;
    const STRING: u32 = 8;
    const ARRAY: u32 = 9;
    let mut kv = Vec::new();
    key(&mut kv, "general.architecture", STRING);
    text(&mut kv, "llama");
    key(&mut kv, "general.name", STRING);
    text(&mut kv, "fuzz");
    for (name, value) in [
        ("llama.context_length", 256u32),
        ("llama.block_count", 1),
        ("llama.embedding_length", 8),
        ("llama.attention.head_count", 2),
        ("general.file_type", 0),
    ] {
        key(&mut kv, name, U32);
        kv.extend_from_slice(&value.to_le_bytes());
    }
    key(&mut kv, "tokenizer.ggml.tokens", ARRAY);
    kv.extend_from_slice(&STRING.to_le_bytes());
    kv.extend_from_slice(&3u64.to_le_bytes());
    for t in ["<unk>", "a", "b"] {
        text(&mut kv, t);
    }
    key(&mut kv, "tokenizer.ggml.scores", ARRAY);
    kv.extend_from_slice(&F32.to_le_bytes());
    kv.extend_from_slice(&3u64.to_le_bytes());
    for s in [0.0f32, 1.0, 2.0] {
        kv.extend_from_slice(&s.to_le_bytes());
    }
    key(&mut kv, "tokenizer.chat_template", STRING);
    text(
        &mut kv,
        "{% for m in messages %}{{ m.content }}{% endfor %}",
    );
    let kv_count = 10u64;

    let tensors: [(&str, &[u64]); 2] =
        [("token_embd.weight", &[8, 3]), ("output_norm.weight", &[8])];
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&kv_count.to_le_bytes());
    out.extend_from_slice(&kv);
    let mut offset = 0u64;
    for (name, dims) in tensors {
        text(&mut out, name);
        out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&0u32.to_le_bytes()); // F32
        out.extend_from_slice(&offset.to_le_bytes());
        offset += (dims.iter().product::<u64>() * 4).div_ceil(32) * 32;
    }
    out.resize(out.len().div_ceil(32) * 32, 0);
    out.resize(out.len() + offset as usize, 0x3F);
    vec![out]
}

/// WAV files: 16 kHz mono 16-bit, 44.1 kHz stereo float, 8 kHz 8-bit, 48 kHz 24-bit in
/// four channels, each a tenth of a second of a tone.
pub fn wav() -> Vec<Vec<u8>> {
    let layouts = [
        (16_000, 1, 16, hound::SampleFormat::Int),
        (44_100, 2, 32, hound::SampleFormat::Float),
        (8_000, 1, 8, hound::SampleFormat::Int),
        (48_000, 4, 24, hound::SampleFormat::Int),
    ];
    layouts
        .into_iter()
        .filter_map(|(rate, channels, bits, format)| {
            let spec = hound::WavSpec {
                channels,
                sample_rate: rate,
                bits_per_sample: bits,
                sample_format: format,
            };
            let mut cursor = Cursor::new(Vec::new());
            let mut w = hound::WavWriter::new(&mut cursor, spec).ok()?;
            for i in 0..rate / 10 {
                let v = (i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 0.5;
                for _ in 0..channels {
                    match format {
                        hound::SampleFormat::Float => w.write_sample(v).ok()?,
                        hound::SampleFormat::Int => {
                            let max = ((1i64 << (bits - 1)) - 1) as f32;
                            w.write_sample((v * max) as i32).ok()?
                        }
                    }
                }
            }
            w.finalize().ok()?;
            Some(cursor.into_inner())
        })
        .collect()
}

/// WAV as espeak-ng streams it to a pipe: 22,050 Hz mono 16-bit, the RIFF and data sizes
/// left at 0x7FFFF000 because the length is not known when the header is written.
pub fn espeak_wav() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&0x7FFF_F000u32.to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&22_050u32.to_le_bytes());
    out.extend_from_slice(&44_100u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&0x7FFF_F000u32.to_le_bytes());
    for i in 0..2205u32 {
        let v = ((i as f32 * 0.06).sin() * 8000.0) as i16;
        out.extend_from_slice(&v.to_le_bytes());
    }
    let mut seeds = vec![out];
    seeds.extend(wav().into_iter().take(1));
    seeds
}

/// A WAV header whose every field is drawn from the values that break readers (sample
/// rate, channels, bits, block alignment, byte rate, chunk sizes, the format tag), followed
/// by up to 4 KB of samples: the structured half of the audio campaign.
pub fn wav_header(rng: &mut Rng) -> Vec<u8> {
    fn pick(rng: &mut Rng, usual: &[u32]) -> u32 {
        const EDGES: &[u32] = &[
            0,
            1,
            2,
            3,
            0x7FFF,
            0xFFFF,
            0x7FFF_FFFF,
            0xFFFF_FF00,
            u32::MAX,
        ];
        if rng.u8(..3) == 0 {
            *rng.choice(EDGES).unwrap_or(&0)
        } else {
            *rng.choice(usual).unwrap_or(&0)
        }
    }
    let format = pick(rng, &[1, 3, 0xFFFE, 6, 7, 2]) as u16;
    let channels = pick(rng, &[1, 2, 6, 8]) as u16;
    let rate = pick(
        rng,
        &[8_000, 16_000, 22_050, 44_100, 48_000, 96_000, 384_000],
    );
    let bits = pick(rng, &[8, 16, 24, 32, 64]) as u16;
    let align = pick(rng, &[u32::from(channels) * u32::from(bits) / 8, 2, 4]) as u16;
    let byte_rate = pick(rng, &[rate.wrapping_mul(u32::from(align)), 32_000]);
    let data_len = rng.usize(..4096);
    let data_size = pick(rng, &[data_len as u32, 0, 44]);
    let fmt_size = pick(rng, &[16, 18, 40]);
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&pick(rng, &[36 + data_len as u32, 0]).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&fmt_size.to_le_bytes());
    out.extend_from_slice(&format.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&byte_rate.to_le_bytes());
    out.extend_from_slice(&align.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    if fmt_size > 16 && fmt_size < 64 {
        // cbSize, valid bits, channel mask, sub-format GUID (PCM or float).
        let extra = (fmt_size - 16) as usize;
        let mut ext = vec![0u8; extra];
        if extra >= 2 {
            ext[..2].copy_from_slice(&((extra as u16).saturating_sub(2)).to_le_bytes());
        }
        if extra >= 24 {
            ext[8] = if rng.bool() { 1 } else { 3 };
        }
        out.extend_from_slice(&ext);
    }
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_size.to_le_bytes());
    out.extend((0..data_len).map(|_| rng.u8(..)));
    out
}

/// Small images in every format Baton reads.
pub fn images() -> Vec<Vec<u8>> {
    use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
    let rgb = RgbImage::from_fn(24, 16, |x, y| Rgb([(x * 10) as u8, (y * 15) as u8, 200]));
    let rgba = RgbaImage::from_fn(16, 16, |x, y| {
        Rgba([(x * 16) as u8, 0, (y * 16) as u8, 128])
    });
    let gray = DynamicImage::ImageRgb8(rgb.clone()).to_luma8();
    let mut out = Vec::new();
    let images = [
        (DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::Png),
        (DynamicImage::ImageRgba8(rgba.clone()), ImageFormat::Png),
        (DynamicImage::ImageLuma8(gray.clone()), ImageFormat::Png),
        (DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::Jpeg),
        (DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::Bmp),
        (DynamicImage::ImageRgba8(rgba.clone()), ImageFormat::Gif),
        (DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::Tiff),
        (DynamicImage::ImageLuma8(gray), ImageFormat::Pnm),
        (DynamicImage::ImageRgba8(rgba), ImageFormat::WebP),
    ];
    for (img, format) in images {
        let mut cursor = Cursor::new(Vec::new());
        if img.write_to(&mut cursor, format).is_ok() {
            out.push(cursor.into_inner());
        }
    }
    out
}

/// The documented default config and a few hand-written ones.
pub fn config() -> Vec<Vec<u8>> {
    [
        baton_runtime::DEFAULT_CONFIG_TOML,
        "[chat]\ntemperature = 0.2\nmax_tokens = 512\n",
        "[llm]\ncontext_length = 4096\n[memory]\nsnippets = 3\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// One line of each LLM worker request and event.
pub fn llm_protocol() -> Vec<Vec<u8>> {
    lines(&[
        r#"{"type":"hello","protocol_version":1}"#,
        r#"{"type":"load","id":"l","path":"/m.gguf","n_ctx":2048,"n_gpu_layers":0,"n_threads":2,"n_parallel":1}"#,
        r#"{"type":"chat","id":"c","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],"params":{"max_tokens":16,"temperature":0.7,"top_p":0.9,"stop":["\n"],"seed":1}}"#,
        r#"{"type":"cancel","id":"c"}"#,
        r#"{"type":"ping","id":"p"}"#,
        r#"{"type":"stats","id":"s"}"#,
        r#"{"type":"shutdown"}"#,
        r#"{"type":"hello","protocol_version":1,"pid":42,"worker_version":"0.1.0"}"#,
        r#"{"type":"loaded","id":"l","metadata":{"path":"/m","architecture":null,"name":null,"parameters":1,"size_bytes":1,"n_layer":1,"n_vocab":1,"n_ctx_train":1,"n_ctx":1,"n_gpu_layers":0,"has_chat_template":true,"load_ms":1}}"#,
        r#"{"type":"queued","id":"c","position":2}"#,
        r#"{"type":"token","id":"c","text":"Hel","t_ms":12}"#,
        r#"{"type":"done","id":"c","text":"Hello","usage":{"prompt_tokens":5,"cached_prompt_tokens":0,"completion_tokens":2,"prompt_eval_ms":40,"gen_ms":90,"first_token_ms":45},"finish_reason":"stop"}"#,
        r#"{"type":"error","id":"c","kind":"internal","message":"boom"}"#,
        r#"{"type":"pong","id":"p"}"#,
    ])
}

/// One line of each speech worker request and event.
pub fn stt_protocol() -> Vec<Vec<u8>> {
    let samples = baton_stt::protocol::encode_samples(&[0.0, 0.5, -0.5, 1.0]);
    let audio = format!(r#"{{"type":"audio","id":"u1","samples":"{samples}"}}"#);
    lines(&[
        r#"{"type":"hello","version":1}"#,
        r#"{"type":"load","model":"/m.bin","threads":2}"#,
        &audio,
        r#"{"type":"partial","id":"u1","language":"en"}"#,
        r#"{"type":"finish","id":"u1","language":null}"#,
        r#"{"type":"cancel","id":"u1"}"#,
        r#"{"type":"ready","version":1,"system":"AVX2 = 1"}"#,
        r#"{"type":"loaded","model":"/m.bin","ms":120}"#,
        r#"{"type":"partial","id":"u1","text":"hello","ms":80}"#,
        r#"{"type":"done","id":"u1","text":"hello there","language":"en","segments":[{"start_ms":0,"end_ms":900,"text":"hello there"}],"audio_ms":1000,"ms":300}"#,
        r#"{"type":"error","id":null,"message":"no model"}"#,
    ])
}

/// Chat completion bodies as OpenAI clients send them.
pub fn api_request() -> Vec<Vec<u8>> {
    lines(&[
        r#"{"model":"auto","messages":[{"role":"user","content":"Hi"}]}"#,
        r#"{"model":"qwen","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hi"}]}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":64,"temperature":0.5,"top_p":0.9,"stop":["\n","END"],"seed":7,"presence_penalty":0.1,"frequency_penalty":0.2}"#,
        r#"{"model":"auto","messages":[{"role":"user","content":"List"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}}}}"#,
        r#"{"model":"auto","messages":[{"role":"user","content":"x"}],"max_completion_tokens":5,"n":1}"#,
    ])
}

/// Task templates: parameters with a schema, steps that depend on each other.
pub fn template() -> Vec<Vec<u8>> {
    lines(&[concat!(
        "name: notes\n",
        "version: 2\n",
        "params:\n",
        "  type: object\n",
        "  required: [audio]\n",
        "  properties:\n",
        "    audio: { type: string }\n",
        "    words: { type: integer, default: 100, minimum: 10 }\n",
        "steps:\n",
        "  - id: transcript\n",
        "    kind: transcribe\n",
        "    input: { file: \"{{ params.audio }}\" }\n",
        "  - id: summary\n",
        "    kind: chat\n",
        "    after: [transcript]\n",
        "    input:\n",
        "      prompt: \"In {{ params.words }} words:\\n{{ steps.transcript.output.text }}\"\n",
    )])
}

/// Cron expressions, each followed by a newline and a time zone.
pub fn cron() -> Vec<Vec<u8>> {
    lines(&[
        "0 8 * * 1-5\nEurope/Berlin",
        "*/15 * * * *\nUTC",
        "@daily\nAmerica/New_York",
        "30 2 29 2 *\nAustralia/Lord_Howe",
        "0 0 1,15 * SUN\nAsia/Kathmandu",
    ])
}

/// Documents: Markdown, code and text (the first byte of each input picks the file
/// extension in the document target), and a one-page PDF with a text layer.
pub fn documents() -> Vec<Vec<u8>> {
    let mut out = lines(&[
        "m# Notes\n\nThe **meeting** moved to Tuesday.\n\n## Budget\n\n- item one\n- item two\n\n```rust\nfn main() {}\n```\n",
        "tplain text over\nseveral lines\n\nand paragraphs.",
        "rfn main() {\n    println!(\"hi\");\n}\n",
    ]);
    out.push(
        [
            b"p".as_slice(),
            &baton_memory::docs::text_pdf(&["Quarterly report: revenue rose."]),
        ]
        .concat(),
    );
    out
}

/// The built-in evaluation sets (JSON lines).
pub fn eval_set() -> Vec<Vec<u8>> {
    baton_eval::BUILTIN_SETS
        .iter()
        .map(|(_, text)| text.as_bytes().to_vec())
        .collect()
}

/// A CTranslate2 `model.bin` with one small float tensor and an alias.
pub fn ct2() -> Vec<Vec<u8>> {
    fn text(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&6u32.to_le_bytes()); // binary version
    text(&mut out, "WhisperSpec");
    out.extend_from_slice(&3u32.to_le_bytes()); // spec revision
    out.extend_from_slice(&1u32.to_le_bytes()); // one variable
    text(&mut out, "encoder/conv1/weight");
    out.push(2); // rank
    out.extend_from_slice(&2u32.to_le_bytes());
    out.extend_from_slice(&3u32.to_le_bytes());
    out.push(0); // float32
    out.extend_from_slice(&24u32.to_le_bytes()); // bytes
    for v in 0..6 {
        out.extend_from_slice(&(v as f32).to_le_bytes());
    }
    out.extend_from_slice(&1u32.to_le_bytes()); // one alias
    text(&mut out, "decoder/embeddings/weight");
    text(&mut out, "encoder/conv1/weight");
    vec![out]
}

fn lines(texts: &[&str]) -> Vec<Vec<u8>> {
    texts.iter().map(|t| t.as_bytes().to_vec()).collect()
}
