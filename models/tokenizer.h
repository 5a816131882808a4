// The tokenizer of a GGUF model: byte-level BPE (tokenizer.ggml.model "gpt2") with the
// pre-tokenizer named by tokenizer.ggml.pre, or SentencePiece-style BPE by scores
// (tokenizer.ggml.model "llama": Llama 1/2, Mistral, Phi-3, Gemma), plus special and added tokens.
//
//   auto tok = models::Tokenizer::from_gguf(file);                  // Expected<Tokenizer>
//   std::vector<int32_t> ids = tok->encode("<|im_start|>user\nHi", /*add_special=*/true,
//                                          /*parse_special=*/true);
//   std::string text = tok->decode(ids);
//
// encode() matches the model's HF tokenizer (tokenizer.encode(text, add_special_tokens=...)) on
// the llama.cpp vocab test vectors. Without parse_special, control tokens ("<|im_start|>") in the
// text are ordinary text; user-defined (added, non-special) tokens are always recognised, as HF
// does. Immutable after construction: every method may be called from many threads at once;
// copies share the vocabulary.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace anvil::gguf {
class File;
}

namespace anvil::models {

// GGUF tokenizer.ggml.token_type values.
enum class TokenType : int32_t {
  undefined = 0,
  normal = 1,
  unknown = 2,
  control = 3,
  user_defined = 4,
  unused = 5,
  byte = 6,
};

enum class TokenizerModel {
  bpe,  // byte-level BPE by merge rank ("gpt2")
  spm,  // SentencePiece BPE by token score, byte fallback ("llama")
};

class Tokenizer {
 public:
  // Reads tokenizer.ggml.{model, pre, tokens, token_type, merges, scores, *_token_id,
  // add_bos_token, add_eos_token, add_space_prefix}. An unknown model or pre-tokenizer is
  // `unsupported`, naming it; missing or inconsistent arrays are `not_found` / `corrupt_file`.
  static Expected<Tokenizer> from_gguf(const gguf::File& file);

  // add_special: BOS (and EOS) as the metadata asks. parse_special: recognise the text of
  // control tokens. Any bytes are accepted; invalid UTF-8 is encoded byte by byte (BPE) or by
  // byte-fallback tokens (SPM).
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;

  // Concatenated pieces. Control tokens are dropped unless render_special. For SPM vocabularies
  // with add_space_prefix, the space encode() put in front of the text is removed again, so
  // decode(encode(x)) == x.
  std::string decode(std::span<const int32_t> ids, bool render_special = false) const;
  // The bytes one token stands for (may be part of a UTF-8 character); "" for an invalid id.
  std::string token_to_piece(int32_t id, bool render_special = true) const;

  int32_t n_vocab() const;
  int32_t bos() const;  // -1 when the vocabulary has none
  int32_t eos() const;
  int32_t eot() const;
  int32_t unk() const;
  int32_t pad() const;
  bool add_bos() const;
  bool add_eos() const;
  // End of generation: EOS, EOT, EOM, and control tokens spelled like an end-of-turn marker
  // (<|im_end|>, <|eot_id|>, <end_of_turn>, <|endoftext|>, <|end|>, ...).
  bool is_eog(int32_t id) const;

  TokenizerModel model() const;
  const std::string& pre() const;  // the pre-tokenizer name ("default" for SPM)
  const std::string& token_text(int32_t id) const;  // as stored in the GGUF; "" for an invalid id
  TokenType token_type(int32_t id) const;
  std::optional<int32_t> find_token(std::string_view text) const;  // by stored spelling

 private:
  struct Impl;
  explicit Tokenizer(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

}  // namespace anvil::models
