/* call.h - one RPC on the server: its lifecycle, arena and reference count, the unary
 * answer (reply or fail) and the streaming API (read, write, finish, cancel). */
#ifndef RM_SERVER_CALL_H
#define RM_SERVER_CALL_H

#include <protobuf-c/protobuf-c.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "rm/arena.h"
#include "rm/error.h"
#include "stats.h"

typedef struct rm_server rm_server_t;
typedef struct rm_call rm_call_t;

/* ---- every call ---- */

/* Monotonic deadline of the call in rm_clock_ns() units, 0 when the client set none. */
uint64_t rm_call_deadline_ns(const rm_call_t *call);
/* Bytes of the received request message (0 when none). */
size_t rm_call_request_bytes(const rm_call_t *call);
/* When the call arrived, in rm_clock_ns() units. */
uint64_t rm_call_arrival_ns(const rm_call_t *call);
/* Non-zero once the client cancelled or the server is force-stopping. */
const atomic_int *rm_call_cancel_flag(const rm_call_t *call);
rm_server_t *rm_call_server(const rm_call_t *call);
/* Non-zero for the server's own warm call (it arrived while rm_server_own_call): it is not a
 * client's, so it is neither counted, logged as a call, nor cached. */
int rm_call_own(const rm_call_t *call);
/* Keeps the call (and its arena and request) alive past its answer; any thread. */
void rm_call_ref(rm_call_t *call);
/* Drops a reference; the last one ends the call (logged, its grpc_call released); its memory
 * goes once the core has released every borrowed slice too. Any thread. */
void rm_call_unref(rm_call_t *call);

/* Memory that lives until the call is destroyed (after its status was sent). Use it only
 * from the thread currently handling the call. */
rm_arena_t *rm_call_arena(rm_call_t *call);
/* Extra fields for the call's log line (e.g. the pipeline name); copied. */
void rm_call_set_log_note(rm_call_t *call, const char *key, const char *value);

/* The call's request id (issue 12): the client's x-request-id (visible ASCII, cut to
 * RM_STATUS_REQUEST_ID_MAX bytes), else the trace id of a valid W3C traceparent, else 32
 * generated hex digits. Echoed as x-request-id in the initial metadata and written in
 * every log line of the call. Lives as long as the call. Any thread. */
const char *rm_call_request_id(const rm_call_t *call);
/* The client's address as the core names it ("ipv4:127.0.0.1:5000"), cut to fit out (size
 * bytes, NUL-terminated; "" when unknown): for log lines written after the call is gone.
 * Any thread, while the caller holds a reference. */
void rm_call_peer(const rm_call_t *call, char *out, size_t size);
/* The trace id (32 lower-case hex digits) of a W3C traceparent value v of len bytes into
 * out: 0, or -1 when v is not a valid traceparent (out untouched). Pure. */
int rm_call_traceparent_id(const char *v, size_t len, char out[33]);
/* What a pipeline call did, for the counters (stats.h): the handler sets its fields; they
 * are counted once, when the status goes out. Thread currently handling the call. */
rm_stats_run_t *rm_call_stats_run(rm_call_t *call);

/* Fills err for something the server's memory budget (--max-memory) refused on this thread
 * for call: RM_ELIMIT (RESOURCE_EXHAUSTED), field "max_memory", naming `what` and its size,
 * and whether it can fit later: not when it is more than the whole budget, nor, for a unary
 * call, when no other call holds memory (rm_server_memory_alone). A session's own state
 * is in the budget too and goes with it, so a new session may fit: "retry later" (marked
 * retry_later, so clients may retry it). */
void rm_call_memory_refused(const rm_call_t *call, rm_error_t *err, const char *what, size_t bytes);
/* Fills err for a received message of `bytes` above --max-message-bytes (the server checks
 * every message it receives; the core's own check is off, see server.c): RM_ELIMIT
 * (RESOURCE_EXHAUSTED), field "max_message_bytes", naming `what`. */
void rm_call_message_too_big(const rm_call_t *call, rm_error_t *err, const char *what,
                             size_t bytes);
/* The same when the budget had room but what the server holds, measured (rm_server_relieve),
 * would pass max-memory (limit): "retry later". */
void rm_call_held_refused(rm_error_t *err, const char *what, size_t bytes, uint64_t held,
                          uint64_t limit);

/* ---- unary calls: exactly one rm_call_reply() or rm_call_fail() ---- */

/* Packs msg and sends it with status OK; a message above max-message-bytes fails the call
 * instead (RESOURCE_EXHAUSTED). The message is not retained. Any thread. */
void rm_call_reply(rm_call_t *call, const ProtobufCMessage *msg);
/* rm_call_reply for a message known to pack into at most bound bytes (it must: the packing
 * writes into a buffer of that size, and aborts the process past it), which spares
 * protobuf-c's sizing walk. The budget is charged the bound, the buffer's size. */
void rm_call_reply_within(rm_call_t *call, const ProtobufCMessage *msg, size_t bound);
/* rm_call_reply without copying: every bytes or string field of at least min_borrow bytes is
 * sent as a slice pointing at the message's own memory, which must stay valid and unchanged
 * until the call's memory is freed (rm_call_at_end runs then); each such slice keeps that
 * memory (not the call itself) until the core is done with it. Only the framing and the smaller
 * fields are copied, and only they are charged to the server's budget here (the borrowed bytes stay
 * charged where they are). Any thread. */
void rm_call_reply_borrowing(rm_call_t *call, const ProtobufCMessage *msg, size_t min_borrow);
/* Copies in what the request's view left out (rm_method_t.gapped): its bytes are all there
 * from then on. No-op when nothing was left out. Thread handling the call. */
void rm_call_fill_view(rm_call_t *call);
/* Bytes the request's view left out and has not filled in (0: none). */
size_t rm_call_view_gap_bytes(const rm_call_t *call);
/* rm_call_fill_view when [p, p + len) reaches into what the view left out. */
void rm_call_fill_view_over(rm_call_t *call, const uint8_t *p, size_t len);
/* Runs fn(arg) once, when the call's memory goes: its last reference is gone and the core
 * has released every borrowed slice; on whichever thread drops the last, before the call's
 * arena is freed. One hook
 * per call; a later call replaces it. */
void rm_call_at_end(rm_call_t *call, void (*fn)(void *arg), void *arg);
/* Sends the status of err (server/status.c: code, message, trailers). err is copied; an
 * err with code 0 answers INTERNAL. Any thread. Also ends a streaming call. */
void rm_call_fail(rm_call_t *call, const rm_error_t *err);
/* rm_call_finish for an end the client's going may have caused: a read that ended without a
 * message, which a half-close and a cancel both give (the core reports no error for either).
 * When the status does not reach the client (it cancelled, its deadline passed or its
 * connection closed), the call is counted and logged as what the client saw, CANCELLED or
 * DEADLINE_EXCEEDED; its count waits until that is known, when the call ends. */
void rm_call_finish_unless_gone(rm_call_t *call, const rm_error_t *err);
/* The status (grpc_status_code) the client saw: final in an rm_call_at_end hook (the call has
 * ended). */
int rm_call_client_status(const rm_call_t *call);
/* The status (grpc_status_code) of a client that went away (it cancelled, its deadline passed
 * or its connection closed): DEADLINE_EXCEEDED once its deadline passed or was
 * RM_CALL_DEADLINE_TRANSIT_NS away, else CANCELLED. Decided at the first ask, by whoever asks
 * first (the close watch, a handler whose run was cancelled): every later ask answers the same,
 * so the counters and the call's log line agree. Any thread. */
int rm_call_gone_status(rm_call_t *call);

/* The sequence number of the stream chunk a later rm_call_fail is about: the failure then
 * carries it (rm-sequence trailer, ErrorInfo metadata "sequence"). For a flush's failure, the
 * sequence its result would have carried (the last chunk's), if any. Thread handling the
 * call. */
void rm_call_set_sequence(rm_call_t *call, uint64_t sequence);
/* A later rm_call_fail is about a flush (as a result's flushed = true): the failure carries
 * rm-flushed: true and ErrorInfo metadata "flushed": "true". Thread handling the call. */
void rm_call_set_flushed(rm_call_t *call);

/* Starts watching for client cancellation (and deadline expiry) so rm_call_cancel_flag
 * turns non-zero when it happens. Call it on the polling thread before handing the call to
 * a worker; calls answered inline skip it and save a batch. Streaming calls are watched
 * from the start. */
void rm_call_watch_cancel(rm_call_t *call);

/* Non-zero when the call is being handled on a worker thread (big requests are unpacked
 * and handled there from the start): handlers need not offload it again. */
int rm_call_on_worker(const rm_call_t *call);

/* The client's own deadline timer fires up to this much before the server's (the deadline
 * travels as a relative timeout): a cancel that close to the deadline is the deadline. */
#define RM_CALL_DEADLINE_TRANSIT_NS (250ull * 1000000ull)

/* Unpacks wire bytes into the call's arena (the message lives as long as the call), all
 * unpacks of one call together held to a budget of twice the request's size plus 1 MiB.
 * NULL when the bytes are not a valid message, a string field holds a NUL byte or is not
 * UTF-8 (rm_wire_check_strings), or the budget is spent: answer with rm_call_fail_unpack.
 * Thread currently handling the call. */
ProtobufCMessage *rm_call_unpack(rm_call_t *call, const ProtobufCMessageDescriptor *desc,
                                 const uint8_t *data, size_t len);
/* rm_call_unpack of the request's field `field` (its name starts the path a string error
 * names), unpacked on its own. */
ProtobufCMessage *rm_call_unpack_field(rm_call_t *call, const char *field,
                                       const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                                       size_t len);
/* Non-zero when an unpack of the call failed on what its bytes hold (a string,
 * rm_wire_check_strings; nesting, rm_wire_check_nesting): unpacking the same bytes another
 * way fails the same. */
int rm_call_unpack_refused_bytes(const rm_call_t *call);
/* Fails the call after rm_call_unpack returned NULL: RESOURCE_EXHAUSTED when the budget
 * was spent, INVALID_ARGUMENT naming the string field and (for an input) the node, else
 * INVALID_ARGUMENT naming the method's request message. */
void rm_call_fail_unpack(rm_call_t *call);

/* ---- streaming calls (RM_RPC_SERVER_STREAM, RM_RPC_BIDI_STREAM) ----
 *
 * The method's handler receives one reference on the call. It ends it with exactly one of:
 * rm_call_finish (or rm_call_fail), or rm_call_unref once a read or write reported the call
 * gone or the close hook ran. At most one read and one write may be in flight at a time.
 * Callbacks run on a polling thread; when a function returns an error its callback never
 * runs. Initial metadata goes out with the first read, write or status. */

/* Why a call ended that the server cancelled (rm_call_gone_status UNAVAILABLE). */
#define RM_CALL_SERVER_CANCELLED                                                                   \
  "the server cancelled the call as it stopped (its grace period ran out, a second signal, or a "  \
  "stream still open when the drain ended)"

/* rc of a read callback when the client half-closed: no more messages. A client that goes
 * after its first message is told apart (the core's grpc_call_failed_before_recv_message) and
 * reads as gone; before its first message the core reports its going as a half-close, so
 * RM_CALL_END there may be either (rm_call_finish_unless_gone). */
#define RM_CALL_END 1
/* rc of a read callback for a message above --max-message-bytes, len its size; the message is
 * not given (rm_call_message_too_big says why). */
#define RM_CALL_TOO_BIG 2

/* rc 0: data/len is the next message, valid only during the callback; RM_CALL_END: the
 * client has no more; RM_CALL_TOO_BIG: the message is too big; RM_ELIMIT: the server's budget
 * refused the message's len bytes (a method with budgeted_reads; rm_call_memory_refused on that
 * thread says why); other negative: the call is gone (cancelled, deadline, shutdown). */
typedef void (*rm_call_read_fn)(rm_call_t *call, int rc, const uint8_t *data, size_t len,
                                void *arg);
/* ok 0: the message could not be sent (the call is gone). */
typedef void (*rm_call_written_fn)(rm_call_t *call, int ok, void *arg);

/* Asks for the next client message. 0, RM_ENOMEM, or RM_ECANCELED when the call cannot
 * take the read (it is over). Any thread. Asked for while a read callback runs (in it, or on
 * another thread), the read starts when that callback has returned and its message has been
 * released; if it cannot start then, fn runs with RM_ECANCELED. */
int rm_call_read(rm_call_t *call, rm_call_read_fn fn, void *arg);
/* In a read callback: the message's bytes (data) are not needed any more; they are freed and
 * what they held of the server's budget given back now instead of when the callback returns.
 * Optional; the call's polling thread or the callback's. */
void rm_call_read_release(rm_call_t *call);
/* Packs msg (not retained) and sends it; fn (may be NULL) runs when it left. 0, RM_ELIMIT
 * above max-message-bytes, RM_ENOMEM, or RM_ECANCELED when the call is over. Any thread. */
int rm_call_write(rm_call_t *call, const ProtobufCMessage *msg, rm_call_written_fn fn, void *arg);
/* Sends the final status: OK when err is NULL, else as rm_call_fail. Ends the handler's
 * reference. Any thread. */
void rm_call_finish(rm_call_t *call, const rm_error_t *err);
/* Cancels the call with err's status and message (no trailers) when a status cannot be
 * sent in order (a write is in flight). The handler still ends its reference. Any thread. */
void rm_call_cancel(rm_call_t *call, const rm_error_t *err);
/* fn(call, arg) runs once, on a polling thread, when the call closes: the status was sent,
 * the client cancelled, the deadline passed or the server is stopping; if the call closed
 * before this is called (a request read after the close was watched), fn runs at once on the
 * calling thread, so a handler whose fn ends its reference sets it last. */
void rm_call_on_close(rm_call_t *call, void (*fn)(rm_call_t *call, void *arg), void *arg);

#endif
