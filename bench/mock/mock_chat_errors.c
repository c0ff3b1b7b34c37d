/* Chat failures family: errors inside a stream in each server's dialect (OpenAI, vLLM, SGLang,
 * llama.cpp, OpenRouter), abrupt ends, and plain HTTP error answers (MOCK_SCENARIOS.md). */
#include "mock_scenarios.h"

/* clang-format off */
static const mock_step_t sc_eof_after_finish[] = {
    S_ROLE, S_TEXT("Hi"), S_TEXT(" there!"), S_FINISH("stop"), S_USAGE(12, 3), S_END,
};
static const mock_step_t sc_error_openai[] = {
    S_ROLE, S_TEXT("Hi"),
    S_DATA("{\"error\":{\"message\":\"Tool XYZ failed to execute.\",\"type\":\"server_error\",\"param\":null,"
           "\"code\":\"tool_error\"}}"),
    S_END,
};
static const mock_step_t sc_error_vllm[] = {
    S_ROLE, S_TEXT("Hi"),
    S_DATA("{\"error\":{\"object\":\"error\",\"message\":\"vLLM engine died\",\"type\":\"InternalServerError\","
           "\"param\":null,\"code\":500}}"),
    S_DONE, S_END,
};
static const mock_step_t sc_error_sglang[] = {
    S_ROLE, S_TEXT("Hi"),
    S_DATA(MOCK_CHUNK_HEAD "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"abort\","
                           "\"message\":\"SGLang request aborted\"}]}"),
    S_DONE, S_END,
};
static const mock_step_t sc_error_llamacpp[] = {
    S_ROLE, S_TEXT("Hi"),
    S_RAW("error: {\"code\":500,\"message\":\"llama.cpp context overflow\",\"type\":\"server_error\"}\n\n"),
    S_DONE, S_END,
};
static const mock_step_t sc_error_openrouter[] = {
    S_ROLE, S_TEXT("Hi"),
    S_DATA(MOCK_CHUNK_HEAD "\"error\":{\"code\":502,\"message\":\"Provider returned error\"},"
                           "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"finish_reason\":\"error\"}]}"),
    S_DONE, S_END,
};
static const mock_step_t sc_error_first[] = {
    S_DATA("{\"error\":{\"message\":\"model overloaded\",\"type\":\"server_error\",\"code\":\"overloaded\"}}"),
    S_END,
};
static const mock_step_t sc_done_then_hold[] = {
    S_ROLE, S_TEXT("Hi"), S_TEXT(" there!"), S_FINISH("stop"), S_USAGE(12, 3), S_DONE, S_HOLD,
};
static const mock_step_t sc_abrupt_close[] = {
    S_ROLE, S_TEXT("Hi"), S_CLOSE,
};

static const mock_chat_sc_t scenarios[] = {
    SC("error_openai", sc_error_openai, SF_STREAM_ONLY),
    SC("error_vllm", sc_error_vllm, SF_STREAM_ONLY),
    SC("error_sglang", sc_error_sglang, SF_STREAM_ONLY),
    SC("error_llamacpp", sc_error_llamacpp, SF_STREAM_ONLY),
    SC("error_openrouter", sc_error_openrouter, SF_STREAM_ONLY),
    SC("error_first", sc_error_first, SF_STREAM_ONLY),
    SC("abrupt_close", sc_abrupt_close, SF_STREAM_ONLY),
    SC("eof_after_finish", sc_eof_after_finish, 0),
    SC("done_then_hold", sc_done_then_hold, SF_STREAM_ONLY),
    SC_HTTP("http400", 400, "application/json", "",
            "{\"error\":{\"message\":\"bad request from upstream\",\"type\":\"invalid_request_error\","
            "\"param\":null,\"code\":null}}"),
    SC_HTTP("http401", 401, "application/json", "",
            "{\"error\":{\"message\":\"invalid api key\",\"type\":\"invalid_request_error\"}}"),
    SC_HTTP("http429", 429, "application/json", "Retry-After: 7\r\n",
            "{\"error\":{\"message\":\"rate limited by upstream\",\"type\":\"rate_limit_error\"}}"),
    SC_HTTP("http500", 500, "application/json", "",
            "{\"error\":{\"message\":\"upstream exploded\",\"type\":\"server_error\"}}"),
    SC_HTTP("http503", 503, "text/plain", "", "service unavailable"),
};
/* clang-format on */

const mock_family_t mock_chat_errors_family = MOCK_CHAT_FAMILY("chat_errors", scenarios);
