/* http: strict scanners around nodejs http-parser. See http.h for the flow. */
#include "workers/http.h"

#include <http_parser.h>
#include <stdlib.h>
#include <string.h>

#include "workers/path.h"

/* Bytes the request line may have beyond the target: method, spaces, version. */
#define REQLINE_SLACK 64
/* Longer than any method http-parser knows: such a request line is refused
 * with 501 (unknown method) as soon as the method is this long. */
#define MAX_METHOD_LEN 20
/* Empty lines tolerated before a request line (RFC 9112 section 2.2). */
#define MAX_LEADING_EMPTY_LINES 8
/* Longest chunk-size line, extensions included. */
#define MAX_CHUNK_LINE 4096

/* Strict chunked framing (RFC 9112 section 7.1), checked before http-parser
 * sees the bytes: it accepts a bare LF inside a chunk extension, which a
 * front proxy may read differently (request smuggling). */
enum chunk_state {
    CK_SIZE_START, /* first hex digit of a chunk-size */
    CK_SIZE,       /* more hex digits, ';', whitespace, or CR */
    CK_SIZE_WS,    /* whitespace after the size: only ';' may follow */
    CK_EXT,        /* chunk extensions up to CR */
    CK_SIZE_LF,    /* LF closing the size line */
    CK_DATA,       /* chunk data */
    CK_DATA_CR,    /* CR after the data */
    CK_DATA_LF,    /* LF after the data */
    CK_TRAILER,    /* start of a trailer line, or CR of the final empty line */
    CK_TRAILER_LINE,
    CK_TRAILER_LF,
    CK_END_LF,
    CK_DONE,
};

struct chunk_check {
    enum chunk_state state;
    unsigned digits;
    uint64_t remaining; /* of the current chunk's data */
    size_t line;        /* bytes in the current size or trailer line */
    size_t trailer;     /* bytes of trailer section so far */
};

struct http_msg {
    http_parser parser;
    struct http_request req;
    const struct http_limits *lim;

    /* head scanning */
    size_t line_start;  /* start of the line being scanned */
    size_t rl_checked;  /* bytes of an unfinished request line found valid so far */
    unsigned rl_state;  /* where in the request line rl_checked ends (enum reqline_part) */
    size_t scanned;     /* bytes searched for the line's LF */
    size_t fields_from; /* end of the request line */
    unsigned empty_lines, field_lines;
    bool have_reqline;
    bool head_method; /* the request line's method is HEAD */

    /* set by parser callbacks */
    int status;
    const char *why;
    bool in_body;  /* headers done: further fields are trailers */
    bool complete; /* the parser reached the end of the message */
    unsigned hosts;
    bool has_te, has_cl;

    struct chunk_check chunk;
    uint64_t body_seen;
    uint64_t body_max; /* max_body_size, or the route's (http_msg_body_limit) */
    bool keep_body;
    int (*sink)(void *arg, const char *p, size_t n); /* http_msg_stream_body */
    void *sink_arg;
    char *body;
    size_t body_cap;

    unsigned fields_cap;
    char *path;
    size_t path_cap;
};

static int refuse(struct http_msg *m, int status, const char *why) {
    m->status = status;
    m->why = why;
    return status;
}

/* ---- character classes ------------------------------------------------ */

/* tchar (RFC 9110 section 5.6.2) */
static const char tchar_map[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1,         ['&'] = 1,         ['\''] = 1,
    ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1,         ['^'] = 1,         ['_'] = 1,
    ['`'] = 1, ['|'] = 1, ['~'] = 1, ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
};

static bool is_tchar(unsigned char c) {
    return tchar_map[c];
}

static bool is_hex(unsigned char c) {
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

static unsigned hex_value(unsigned char c) {
    return c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
}

/* ---- the request line ------------------------------------------------- */

/* method SP request-target SP HTTP-version, exactly (RFC 9112 section 3). */
static int check_request_line(struct http_msg *m, const char *line, size_t len) {
    size_t i = 0;
    while (i < len && is_tchar((unsigned char)line[i])) i++;
    if (i == 0 || i == len || line[i] != ' ') return refuse(m, 400, "malformed request line");
    m->head_method = i == 4 && memcmp(line, "HEAD", 4) == 0;
    size_t target = ++i;
    while (i < len && (unsigned char)line[i] > ' ' && (unsigned char)line[i] < 0x7f) i++;
    if (i == target || i == len || line[i] != ' ')
        return refuse(m, 400, "malformed request target");
    if (i - target > m->lim->max_uri) return refuse(m, 414, "request target too long");
    const char *v = line + i + 1;
    if (len - i - 1 != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
        v[7] < '0' || v[7] > '9')
        return refuse(m, 400, "malformed HTTP version");
    if (v[5] != '1') return refuse(m, 505, "HTTP version not supported");
    return 0;
}

/* The request line as it arrives: each byte is checked once, so that bytes
 * that cannot begin a request (a TLS ClientHello, "G(T /", a binary
 * protocol) are refused at once instead of holding the connection for
 * header_timeout. Only what check_request_line() would refuse with 400 is
 * refused here, so that the verdict does not depend on how the bytes
 * arrive. */
enum reqline_part { RL_START, RL_METHOD, RL_TARGET_START, RL_SCHEME, RL_TARGET, RL_VERSION };

static int check_partial_request_line(struct http_msg *m, const char *line, size_t len) {
    static const char version[] = "HTTP/d.d";
    for (size_t i = m->rl_checked; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        switch (m->rl_state) {
        case RL_START:
            /* a CR here begins an empty line (its LF has not come yet) */
            if (c == '\r' && len == 1) return 0;
            if (!is_tchar(c)) return refuse(m, 400, "malformed request line");
            m->rl_state = RL_METHOD;
            break;
        case RL_METHOD:
            /* CONNECT's authority-form target is refused later, with 501 */
            if (c == ' ' && i == 7 && memcmp(line, "CONNECT", 7) == 0) return 0;
            if (c == ' ')
                m->rl_state = RL_TARGET_START;
            else if (!is_tchar(c))
                return refuse(m, 400, "malformed request line");
            else if (i >= MAX_METHOD_LEN)
                return refuse(m, 501, "method not implemented");
            break;
        case RL_TARGET_START:
            /* origin-form, asterisk-form, or the scheme of absolute-form
             * (http-parser takes letters only there) */
            if (c == '/' || c == '*')
                m->rl_state = RL_TARGET;
            else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
                m->rl_state = RL_SCHEME;
            else
                return refuse(m, 400, "malformed request target");
            break;
        case RL_SCHEME:
            if (c == ':')
                m->rl_state = RL_TARGET;
            else if (!((c | 0x20) >= 'a' && (c | 0x20) <= 'z'))
                return refuse(m, 400, "malformed request target");
            break;
        case RL_TARGET:
            if (c == ' ') {
                m->rl_state = RL_VERSION;
                m->rl_checked = i + 1; /* the version starts after it */
                break;
            }
            if (c < ' ' || c >= 0x7f) return refuse(m, 400, "malformed request target");
            break;
        case RL_VERSION: {
            size_t at = i - m->rl_checked;
            if (at == sizeof version - 1 && c == '\r') return 0; /* its LF is on the way */
            bool ok = at < sizeof version - 1 &&
                      (version[at] == 'd' ? c >= '0' && c <= '9' : c == (unsigned char)version[at]);
            if (!ok) return refuse(m, 400, "malformed HTTP version");
            continue; /* rl_checked stays at the version's start */
        }
        }
        if (m->rl_state != RL_VERSION) m->rl_checked = i + 1;
    }
    return 0;
}

/* ---- http-parser callbacks -------------------------------------------- */

static int on_url(http_parser *p, const char *at, size_t len) {
    struct http_msg *m = p->data;
    m->req.target.p = at;
    m->req.target.len = len;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
    struct http_msg *m = p->data;
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)at[i])) {
            refuse(m, 400, "invalid character in a field name");
            return -1;
        }
    if (m->in_body) return 0; /* trailer fields are checked, then dropped */
    if (m->req.nfields == m->fields_cap) {
        unsigned cap = m->fields_cap ? m->fields_cap * 2 : 16;
        struct http_field *f = realloc(m->req.fields, cap * sizeof *f);
        if (!f) {
            refuse(m, 500, "out of memory");
            return -1;
        }
        m->req.fields = f;
        m->fields_cap = cap;
    }
    struct http_field *f = &m->req.fields[m->req.nfields++];
    f->name.p = at;
    f->name.len = len;
    f->value.p = at + len;
    f->value.len = 0;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
    struct http_msg *m = p->data;
    if (m->in_body) return 0;
    while (len && (at[len - 1] == ' ' || at[len - 1] == '\t')) len--;
    struct http_field *f = &m->req.fields[m->req.nfields - 1];
    f->value.p = at;
    f->value.len = len;
    return 0;
}

/* uri-host [":" port]: reg-name, IPv4 or [IPv6] characters only. */
static bool valid_host(struct http_str h) {
    static const char ok[] = "-._~!$&'()*+,;=:[]%";
    for (size_t i = 0; i < h.len; i++) {
        unsigned char c = (unsigned char)h.p[i];
        if (!((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
              (c && strchr(ok, c))))
            return false;
    }
    return true;
}

/* Transfer-Encoding: only "chunked", once, last (RFC 9112 section 6.1). */
static int check_transfer_encoding(struct http_msg *m, struct http_str v) {
    const char *p = v.p, *end = v.p + v.len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ',')) p++;
        const char *tok = p;
        while (p < end && *p != ',') p++;
        const char *tend = p;
        while (tend > tok && (tend[-1] == ' ' || tend[-1] == '\t')) tend--;
        if (tend == tok) continue;
        struct http_str coding = {tok, (size_t)(tend - tok)};
        if (m->req.chunked) return refuse(m, 400, "chunked is not the last transfer coding");
        if (!http_str_ieq(coding, "chunked"))
            return refuse(m, 501, "transfer coding not implemented");
        m->req.chunked = true;
    }
    return 0;
}

static int check_target(struct http_msg *m) {
    struct http_request *r = &m->req;
    struct http_str t = r->target;
    if (memchr(t.p, '#', t.len)) return refuse(m, 400, "fragment in request target");
    if (t.p[0] == '/') {
        const char *q = memchr(t.p, '?', t.len);
        r->path_raw.p = t.p;
        r->path_raw.len = q ? (size_t)(q - t.p) : t.len;
        if (q) {
            r->query.p = q + 1;
            r->query.len = t.len - r->path_raw.len - 1;
        }
    } else if (t.len == 1 && t.p[0] == '*') {
        if (r->method != METHOD_OPTIONS) return refuse(m, 400, "'*' target outside OPTIONS");
        r->path = "*";
        r->path_len = 1;
        return 0;
    } else {
        /* absolute-form (RFC 9112 section 3.2.2): the path is what counts */
        struct http_parser_url u;
        http_parser_url_init(&u);
        if (http_parser_parse_url(t.p, t.len, 0, &u) != 0 || !(u.field_set & (1 << UF_SCHEMA)) ||
            !(u.field_set & (1 << UF_HOST)))
            return refuse(m, 400, "malformed request target");
        struct http_str scheme = {t.p + u.field_data[UF_SCHEMA].off, u.field_data[UF_SCHEMA].len};
        if (!http_str_ieq(scheme, "http") && !http_str_ieq(scheme, "https"))
            return refuse(m, 400, "unsupported URI scheme");
        if (u.field_set & (1 << UF_PATH)) {
            r->path_raw.p = t.p + u.field_data[UF_PATH].off;
            r->path_raw.len = u.field_data[UF_PATH].len;
        } else {
            r->path_raw.p = "/";
            r->path_raw.len = 1;
        }
        if (u.field_set & (1 << UF_QUERY)) {
            r->query.p = t.p + u.field_data[UF_QUERY].off;
            r->query.len = u.field_data[UF_QUERY].len;
        }
        /* RFC 9112 section 3.2.2: the target's authority wins over Host */
        size_t host = u.field_data[UF_HOST].off, host_end = host + u.field_data[UF_HOST].len;
        if (host > 0 && t.p[host - 1] == '[') host--; /* [v6]: keep the brackets */
        if (u.field_set & (1 << UF_PORT))
            host_end = u.field_data[UF_PORT].off + u.field_data[UF_PORT].len;
        else if (host_end < t.len && t.p[host_end] == ']')
            host_end++;
        r->host.p = t.p + host;
        r->host.len = host_end - host;
    }
    if (m->path_cap < r->path_raw.len + 2) {
        char *p = realloc(m->path, r->path_raw.len + 2);
        if (!p) return refuse(m, 500, "out of memory");
        m->path = p;
        m->path_cap = r->path_raw.len + 2;
    }
    ssize_t n = path_normalize(r->path_raw.p, r->path_raw.len, m->path);
    if (n < 0) return refuse(m, 400, "bad path encoding or path above the root");
    r->path = m->path;
    r->path_len = (size_t)n;
    return 0;
}

static enum req_method method_of(unsigned m) {
    switch (m) {
    case HTTP_GET: return METHOD_GET;
    case HTTP_HEAD: return METHOD_HEAD;
    case HTTP_POST: return METHOD_POST;
    case HTTP_PUT: return METHOD_PUT;
    case HTTP_DELETE: return METHOD_DELETE;
    case HTTP_OPTIONS: return METHOD_OPTIONS;
    case HTTP_PATCH: return METHOD_PATCH;
    case HTTP_TRACE: return METHOD_TRACE;
    default: return METHOD_OTHER;
    }
}

static int check_head(struct http_msg *m) {
    http_parser *p = &m->parser;
    struct http_request *r = &m->req;

    r->method = method_of(p->method);
    r->method_name.p = http_method_str((enum http_method)p->method);
    r->method_name.len = strlen(r->method_name.p);
    r->version = p->http_minor == 0 ? 10 : 11;
    if (p->method == HTTP_CONNECT) return refuse(m, 501, "CONNECT is not supported");

    for (unsigned i = 0; i < r->nfields; i++) {
        struct http_field *f = &r->fields[i];
        /* one pass, sorted by name length: most fields match no case */
        switch (f->name.len) {
        case 4:
            if (http_str_ieq(f->name, "host")) {
                m->hosts++;
                r->host = f->value;
            }
            break;
        case 5:
            if (!r->range && http_str_ieq(f->name, "range")) r->range = &f->value;
            break;
        case 6:
            if (!http_str_ieq(f->name, "expect")) break;
            if (!http_str_ieq(f->value, "100-continue"))
                return refuse(m, 417, "unsupported expectation");
            r->expect_continue = true;
            break;
        case 7:
            if (!r->referer && http_str_ieq(f->name, "referer")) r->referer = &f->value;
            break;
        case 8:
            if (!r->if_range && http_str_ieq(f->name, "if-range"))
                r->if_range = &f->value;
            else if (!r->if_match && http_str_ieq(f->name, "if-match"))
                r->if_match = &f->value;
            break;
        case 10:
            if (!r->user_agent && http_str_ieq(f->name, "user-agent")) r->user_agent = &f->value;
            break;
        case 12:
            if (!r->content_type && http_str_ieq(f->name, "content-type"))
                r->content_type = &f->value;
            break;
        case 13:
            if (!r->if_none_match && http_str_ieq(f->name, "if-none-match"))
                r->if_none_match = &f->value;
            break;
        case 14: m->has_cl |= http_str_ieq(f->name, "content-length"); break;
        case 15:
            if (!r->accept_encoding && http_str_ieq(f->name, "accept-encoding"))
                r->accept_encoding = &f->value;
            break;
        case 17:
            if (!r->if_modified_since && http_str_ieq(f->name, "if-modified-since")) {
                r->if_modified_since = &f->value;
            } else if (http_str_ieq(f->name, "transfer-encoding")) {
                m->has_te = true;
                if (check_transfer_encoding(m, f->value)) return m->status;
            }
            break;
        case 19:
            if (!r->if_unmodified_since && http_str_ieq(f->name, "if-unmodified-since"))
                r->if_unmodified_since = &f->value;
            break;
        }
    }
    if (m->hosts > 1) return refuse(m, 400, "repeated Host field");
    if (m->hosts == 0 && r->version == 11) return refuse(m, 400, "missing Host field");
    if (m->hosts && !valid_host(r->host)) return refuse(m, 400, "invalid Host field");
    if (m->has_te && m->has_cl) return refuse(m, 400, "both Content-Length and Transfer-Encoding");
    if (m->has_te && r->version == 10) return refuse(m, 400, "Transfer-Encoding in HTTP/1.0");
    if (m->has_te && !r->chunked) return refuse(m, 400, "empty Transfer-Encoding");
    /* compared unsigned: a length of 2^63 or more must not read as negative */
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > m->lim->max_body_size)
        return refuse(m, 413, "body larger than max_body_size");
    r->content_length = (p->flags & F_CONTENTLENGTH) ? (int64_t)p->content_length : -1;
    /* "close" wins over "keep-alive" (RFC 9112 9.3); http-parser lets an
     * HTTP/1.0 keep-alive token win whatever else the field says */
    r->keep_alive = http_should_keep_alive(p) && !(p->flags & F_CONNECTION_CLOSE);
    return check_target(m);
}

static int on_headers_complete(http_parser *p) {
    struct http_msg *m = p->data;
    m->in_body = true;
    if (check_head(m)) return -1;
    /* http-parser matches Transfer-Encoding itself and misses valid forms
     * ("chunked<TAB>", empty list elements): our verdict is the one it uses */
    if (m->req.chunked) p->flags |= F_CHUNKED;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
    struct http_msg *m = p->data;
    m->body_seen += len;
    if (m->body_seen > m->body_max) {
        refuse(m, 413, "body larger than max_body_size");
        return -1;
    }
    if (m->sink) {
        if (m->sink(m->sink_arg, at, len) == 0) return 0;
        refuse(m, 500, "out of memory");
        return -1;
    }
    if (!m->keep_body) return 0;
    if (m->req.body.len + len > m->body_cap) {
        size_t cap = m->body_cap ? m->body_cap : 4096;
        while (cap < m->req.body.len + len) cap *= 2;
        char *b = realloc(m->body, cap);
        if (!b) {
            refuse(m, 500, "out of memory");
            return -1;
        }
        m->body = b;
        m->body_cap = cap;
        m->req.body.p = b;
    }
    memcpy(m->body + m->req.body.len, at, len);
    m->req.body.len += len;
    return 0;
}

static int on_message_complete(http_parser *p) {
    struct http_msg *m = p->data;
    m->complete = true;
    /* one request in flight: the next one waits until this one is answered */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Runs http-parser over buf; returns bytes taken or -1 with m->status set. */
static long run_parser(struct http_msg *m, const char *buf, size_t len) {
    size_t n = http_parser_execute(&m->parser, &parser_settings, buf, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&m->parser);
    if (e == HPE_OK || e == HPE_PAUSED) return (long)n;
    if (m->status) return -1; /* a callback refused, with its reason */
    switch (e) {
    case HPE_INVALID_METHOD: refuse(m, 501, "method not implemented"); break;
    case HPE_HEADER_OVERFLOW: refuse(m, 431, "header section too large"); break;
    case HPE_INVALID_TRANSFER_ENCODING: refuse(m, 400, "invalid Transfer-Encoding"); break;
    default: refuse(m, 400, http_errno_description(e)); break;
    }
    return -1;
}

/* ---- public ----------------------------------------------------------- */

void http_init(const struct http_limits *lim) {
    http_parser_set_max_header_size(
        (uint32_t)(lim->max_uri + REQLINE_SLACK + lim->max_header_size + 4));
}

struct http_msg *http_msg_new(void) {
    return calloc(1, sizeof(struct http_msg));
}

void http_msg_free(struct http_msg *m) {
    if (!m) return;
    free(m->req.fields);
    free(m->body);
    free(m->path);
    free(m);
}

void http_msg_start(struct http_msg *m, const struct http_limits *lim) {
    struct http_field *fields = m->req.fields;
    char *body = m->body, *path = m->path;
    unsigned fields_cap = m->fields_cap;
    size_t body_cap = m->body_cap, path_cap = m->path_cap;

    memset(m, 0, sizeof *m);
    m->req.fields = fields;
    m->fields_cap = fields_cap;
    m->body = body;
    m->body_cap = body_cap;
    m->req.body.p = body;
    m->path = path;
    m->path_cap = path_cap;
    m->lim = lim;
    m->body_max = lim->max_body_size;
    m->req.content_length = -1;
    http_parser_init(&m->parser, HTTP_REQUEST);
    m->parser.data = m;
}

void http_msg_trim(struct http_msg *m, size_t max) {
    if (m->body_cap > max) {
        free(m->body);
        m->body = NULL;
        m->body_cap = 0;
        m->req.body.p = NULL;
    }
    if (m->path_cap > max) {
        free(m->path);
        m->path = NULL;
        m->path_cap = 0;
    }
    if (m->fields_cap * sizeof *m->req.fields > max) {
        free(m->req.fields);
        m->req.fields = NULL;
        m->fields_cap = 0;
    }
}

struct http_request *http_msg_request(struct http_msg *m) {
    return &m->req;
}

const char *http_msg_error(const struct http_msg *m) {
    return m->why ? m->why : "";
}

int http_msg_head(struct http_msg *m, const char *buf, size_t len, size_t *used) {
    const struct http_limits *lim = m->lim;
    size_t pos = m->scanned;

    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        if (!nl) {
            pos = len;
            break;
        }
        size_t eol = (size_t)(nl - buf);
        if (eol == m->line_start || buf[eol - 1] != '\r')
            return refuse(m, 400, "line not ended by CRLF");
        const char *line = buf + m->line_start;
        size_t line_len = eol - 1 - m->line_start;
        pos = m->line_start = eol + 1;
        /* a CR inside a line is a line end to some parsers (http-parser
         * among them), and a way to hide fields from us: smuggling */
        if (memchr(line, '\r', line_len)) return refuse(m, 400, "bare CR in the request head");

        m->rl_checked = 0;
        m->rl_state = RL_START;
        if (!m->have_reqline) {
            if (line_len == 0) {
                if (++m->empty_lines > MAX_LEADING_EMPTY_LINES)
                    return refuse(m, 400, "too many empty lines before the request");
                continue;
            }
            if (check_request_line(m, line, line_len)) return m->status;
            m->have_reqline = true;
            m->fields_from = pos;
            continue;
        }
        if (pos - m->fields_from > lim->max_header_size)
            return refuse(m, 431, "header section too large");
        if (line_len == 0) {
            /* the complete head: now through http-parser, which must see
             * the very same head (a body byte taken here means it did not) */
            long taken = run_parser(m, buf, pos);
            if (taken < 0) return m->status;
            if ((size_t)taken != pos || m->body_seen)
                return refuse(m, 400, "inconsistent request head");
            *used = pos;
            return HTTP_DONE;
        }
        if (line[0] == ' ' || line[0] == '\t')
            return refuse(m, 400, "obsolete line folding or whitespace before a field");
        if (++m->field_lines > lim->max_headers) return refuse(m, 431, "too many header fields");
    }
    m->scanned = pos;
    if (!m->have_reqline &&
        check_partial_request_line(m, buf + m->line_start, len - m->line_start) != 0)
        return m->status;
    /* the line in progress may already be over its limit */
    if (!m->have_reqline && len - m->line_start > lim->max_uri + REQLINE_SLACK)
        return refuse(m, 414, "request line too long");
    if (m->have_reqline && len - m->fields_from > lim->max_header_size)
        return refuse(m, 431, "header section too large");
    return HTTP_AGAIN;
}

bool http_msg_is_head(const struct http_msg *m) {
    return m->head_method;
}

bool http_msg_has_body(const struct http_msg *m) {
    return !m->complete;
}

void http_msg_keep_body(struct http_msg *m) {
    m->keep_body = true;
}

void http_msg_stream_body(struct http_msg *m, int (*sink)(void *arg, const char *p, size_t n),
                          void *arg) {
    m->sink = sink;
    m->sink_arg = arg;
}

int http_msg_body_limit(struct http_msg *m, uint64_t max) {
    m->body_max = max;
    if (m->req.content_length >= 0 && (uint64_t)m->req.content_length > max)
        return refuse(m, 413, "body larger than max_body_size");
    return 0;
}

/* Checks chunked framing; returns bytes up to the end of the message (or all
 * of len when the message goes on), -1 on a framing error. */
static long chunk_scan(struct http_msg *m, char *buf, size_t len) {
    struct chunk_check *c = &m->chunk;
    size_t i = 0;
    while (i < len) {
        unsigned char ch = (unsigned char)buf[i];
        switch (c->state) {
        case CK_SIZE_START:
            if (!is_hex(ch)) goto bad;
            c->remaining = 0;
            c->digits = 0;
            c->line = 0;
            c->state = CK_SIZE;
            continue; /* the digit again, in CK_SIZE */
        case CK_SIZE:
            if (is_hex(ch)) {
                if (++c->digits > 16) goto bad; /* over 64 bits */
                c->remaining = c->remaining << 4 | hex_value(ch);
            } else if (ch == ';') {
                c->state = CK_EXT;
            } else if (ch == ' ' || ch == '\t') {
                /* BWS before an extension may be HTAB (RFC 9112 7.1.1);
                 * http-parser takes only SP there, and the extension is
                 * dropped anyway */
                buf[i] = ' ';
                c->state = CK_SIZE_WS;
            } else if (ch == '\r') {
                c->state = CK_SIZE_LF;
            } else {
                goto bad;
            }
            break;
        case CK_SIZE_WS:
            if (ch == ';')
                c->state = CK_EXT;
            else if (ch != ' ' && ch != '\t')
                goto bad;
            break;
        case CK_EXT:
            /* VCHAR, obs-text, SP and HTAB; no CTL, so no bare LF */
            if (ch == '\r')
                c->state = CK_SIZE_LF;
            else if ((ch < ' ' && ch != '\t') || ch == 0x7f)
                goto bad;
            break;
        case CK_SIZE_LF:
            if (ch != '\n') goto bad;
            c->state = c->remaining ? CK_DATA : CK_TRAILER;
            break;
        case CK_DATA: {
            size_t take = len - i < c->remaining ? len - i : (size_t)c->remaining;
            c->remaining -= take;
            i += take;
            if (!c->remaining) c->state = CK_DATA_CR;
            continue;
        }
        case CK_DATA_CR:
            if (ch != '\r') goto bad;
            c->state = CK_DATA_LF;
            break;
        case CK_DATA_LF:
            if (ch != '\n') goto bad;
            c->state = CK_SIZE_START;
            break;
        case CK_TRAILER:
            c->line = 0;
            if (ch == '\r')
                c->state = CK_END_LF;
            else if (ch == ' ' || ch == '\t' || ch == '\n')
                goto bad;
            else
                c->state = CK_TRAILER_LINE;
            break;
        case CK_TRAILER_LINE:
            if (ch == '\r')
                c->state = CK_TRAILER_LF;
            else if ((ch < ' ' && ch != '\t') || ch == 0x7f)
                goto bad;
            break;
        case CK_TRAILER_LF:
            if (ch != '\n') goto bad;
            c->state = CK_TRAILER;
            break;
        case CK_END_LF:
            if (ch != '\n') goto bad;
            c->state = CK_DONE;
            return (long)i + 1;
        case CK_DONE: return (long)i;
        }
        i++;
        if (c->state == CK_SIZE || c->state == CK_SIZE_WS || c->state == CK_EXT) {
            /* http-parser counts these bytes against the header cap too:
             * refuse first, the same way however the bytes arrive */
            if (++c->line > MAX_CHUNK_LINE || c->line > m->lim->max_header_size) {
                refuse(m, 400, "chunk size line too long");
                return -1;
            }
        } else if (c->state == CK_TRAILER_LINE || c->state == CK_TRAILER_LF) {
            if (++c->trailer > m->lim->max_header_size) {
                refuse(m, 431, "trailer section too large");
                return -1;
            }
        }
    }
    return (long)len;
bad:
    refuse(m, 400, "malformed chunked framing");
    return -1;
}

int http_msg_body(struct http_msg *m, char *buf, size_t len, size_t *used) {
    size_t n = len;
    if (m->req.chunked) {
        long k = chunk_scan(m, buf, len);
        if (k < 0) return m->status;
        n = (size_t)k;
    }
    long taken = n ? run_parser(m, buf, n) : 0;
    if (taken < 0) return m->status;
    *used = (size_t)taken;
    if (m->complete) return HTTP_DONE;
    if ((size_t)taken != n || (m->req.chunked && m->chunk.state == CK_DONE))
        return refuse(m, 400, "inconsistent message framing");
    return HTTP_AGAIN;
}

static void rebase_str(struct http_str *s, const char *old, const char *new_base, size_t len) {
    if (s->p >= old && s->p < old + len) s->p = new_base + (s->p - old);
}

void http_msg_rebase(struct http_msg *m, const char *old, const char *new_base, size_t len) {
    struct http_request *r = &m->req;
    rebase_str(&r->target, old, new_base, len);
    rebase_str(&r->path_raw, old, new_base, len);
    rebase_str(&r->query, old, new_base, len);
    rebase_str(&r->host, old, new_base, len);
    for (unsigned i = 0; i < r->nfields; i++) {
        rebase_str(&r->fields[i].name, old, new_base, len);
        rebase_str(&r->fields[i].value, old, new_base, len);
    }
}

const struct http_str *http_find(const struct http_request *r, const char *name) {
    for (unsigned i = 0; i < r->nfields; i++)
        if (http_str_ieq(r->fields[i].name, name)) return &r->fields[i].value;
    return NULL;
}
