/* The receiver's per-message passes over a body, in C.
 *
 * strip_final_values(body) returns what exposition._FINAL_NUMBER.subn(b"\n",
 * body) returns: the body with every line's final value taken out, and how
 * many were. A final value is a run of 1 to SHAPE_VALUE_MAX value characters
 * (value_char below, as in exposition._FINAL_VALUE) that follows a space and
 * ends at a newline. The regex spends most of its time building one match
 * object and one piece of the result per line; this builds only the result
 * (docs/performance.md has the figures).
 *
 * The body is untrusted: every index stays within [0, len), and the result
 * is never longer than the body.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define SHAPE_VALUE_MAX 40 /* exposition.SHAPE_VALUE_MAX */

static unsigned char value_char[256];

static PyObject *
strip_final_values(PyObject *module, PyObject *arg)
{
    (void)module;
    if (!PyBytes_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "expected bytes, not %.100s", Py_TYPE(arg)->tp_name);
        return NULL;
    }
    const char *body = PyBytes_AS_STRING(arg);
    Py_ssize_t size = PyBytes_GET_SIZE(arg);
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL) {
        return NULL;
    }
    char *dest = PyBytes_AS_STRING(out);
    Py_ssize_t written = 0, copied = 0, values = 0;
    const char *newline = size ? memchr(body, '\n', (size_t)size) : NULL;
    while (newline != NULL) {
        Py_ssize_t end = newline - body; /* body[end] == '\n' */
        Py_ssize_t start = end;
        /* Back over the value characters; '\n' and ' ' are not among them. */
        while (start > 0 && end - start <= SHAPE_VALUE_MAX &&
               value_char[(unsigned char)body[start - 1]]) {
            start--;
        }
        Py_ssize_t run = end - start;
        if (run >= 1 && run <= SHAPE_VALUE_MAX && start > 0 && body[start - 1] == ' ') {
            /* Keep body[copied, start - 1), drop " value"; the '\n' stays. */
            Py_ssize_t keep = start - 1 - copied;
            memcpy(dest + written, body + copied, (size_t)keep);
            written += keep;
            copied = end;
            values++;
        }
        Py_ssize_t next = end + 1;
        newline = next < size ? memchr(body + next, '\n', (size_t)(size - next)) : NULL;
    }
    memcpy(dest + written, body + copied, (size_t)(size - copied));
    written += size - copied;
    if (_PyBytes_Resize(&out, written) < 0) {
        return NULL;
    }
    return Py_BuildValue("(Nn)", out, values);
}


/* check_exposition(body) answers whether a body is exposition text that the
 * Pushgateway and Prometheus accept, the rules of exposition_check._Walk
 * (which is the reference and says what is wrong): 0 when valid, the number
 * of the first bad line, or -1 when this pass leaves the decision to the
 * walk (a line with very many labels, a very long number). */

#define FAMILY_TYPE_MASK 7
#define FAMILY_UNTYPED 1
#define FAMILY_COUNTER 2
#define FAMILY_GAUGE 3
#define FAMILY_SUMMARY 4
#define FAMILY_HISTOGRAM 5
#define FAMILY_HELP 8
#define MAX_LABELS 64
#define MAX_NUMBER 64
#define UNDECIDED (-1)

#define C_BLANK 1
#define C_NAME_START 2
#define C_NAME 4
#define C_LABEL_START 8
#define C_LABEL 16
static unsigned char char_class[256];

static void
init_char_class(void)
{
    char_class[' '] = char_class['\t'] = C_BLANK;
    for (int c = 0; c < 256; c++) {
        int letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        int digit = c >= '0' && c <= '9';
        if (letter) char_class[c] |= C_NAME_START | C_NAME | C_LABEL_START | C_LABEL;
        if (digit) char_class[c] |= C_NAME | C_LABEL;
    }
    char_class[':'] |= C_NAME_START | C_NAME;
}

#define is_blank(c) (char_class[(unsigned char)(c)] & C_BLANK)
#define name_start(c) (char_class[(unsigned char)(c)] & C_NAME_START)
#define name_char(c) (char_class[(unsigned char)(c)] & C_NAME)
#define label_start(c) (char_class[(unsigned char)(c)] & C_LABEL_START)
#define label_char(c) (char_class[(unsigned char)(c)] & C_LABEL)

static int
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Strict UTF-8 as Go's utf8.Valid and Python's decoder take it. */
static int
valid_utf8(const unsigned char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        Py_ssize_t need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return 0;
        }
        if (i + need >= n) {
            return 0;
        }
        if (s[i + 1] < lo || s[i + 1] > hi) {
            return 0;
        }
        for (Py_ssize_t k = 2; k <= need; k++) {
            if (s[i + k] < 0x80 || s[i + k] > 0xBF) {
                return 0;
            }
        }
        i += need + 1;
    }
    return 1;
}

static int
ieq(const char *s, Py_ssize_t n, const char *word)
{
    Py_ssize_t len = (Py_ssize_t)strlen(word);
    if (n != len) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != word[i]) return 0;
    }
    return 1;
}

/* 1 a number Go's ParseFloat takes (no hex, no '_'), 0 not, UNDECIDED too long to tell. */
static int
check_float(const char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    if (n == 0) return 0;
    if (ieq(s, n, "nan")) return 1;
    if (s[0] == '+' || s[0] == '-') i = 1;
    if (ieq(s + i, n - i, "inf") || ieq(s + i, n - i, "infinity")) return 1;
    Py_ssize_t digits = 0, int_digits = 0;
    while (i < n && is_digit(s[i])) { i++; digits++; int_digits++; }
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && is_digit(s[i])) { i++; digits++; }
    }
    if (digits == 0) return 0;
    Py_ssize_t exp_digits = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        while (i < n && is_digit(s[i])) { i++; exp_digits++; }
        if (exp_digits == 0) return 0;
    }
    if (i != n) return 0;
    /* At most 20 digits before the point and two in the exponent: far within range. */
    if (int_digits <= 20 && exp_digits <= 2) return 1;
    if (n >= MAX_NUMBER) return UNDECIDED;
    char buf[MAX_NUMBER];
    memcpy(buf, s, (size_t)n);
    buf[n] = '\0';
    double value = PyOS_string_to_double(buf, NULL, NULL);
    if (value == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return UNDECIDED;
    }
    return !Py_IS_INFINITY(value);
}

static int
check_int64(const char *s, Py_ssize_t n)
{
    Py_ssize_t i = (n > 0 && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
    if (i == n) return 0;
    for (Py_ssize_t k = i; k < n; k++) {
        if (!is_digit(s[k])) return 0;
    }
    return n - i <= 18 ? 1 : UNDECIDED;
}

/* Families by name: an open-addressing table of spans of the body (which
 * outlives the call), so no name is copied. */
typedef struct {
    const char *name; /* NULL: free slot */
    Py_ssize_t len;
    long flags;
} Family;

typedef struct {
    Family *slots;
    size_t mask; /* capacity - 1, capacity a power of two */
    size_t used;
    /* The last name looked up: a family's HELP, TYPE and samples come in a row. */
    const char *last_name;
    Py_ssize_t last_len;
    Family *last;
} Families;

static size_t
name_hash(const char *name, Py_ssize_t n)
{
    size_t h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)name[i]) * 1099511628211ULL;
    }
    return h;
}

static Family *
families_find(Families *t, const char *name, Py_ssize_t n)
{
    size_t i = name_hash(name, n) & t->mask;
    while (t->slots[i].name != NULL) {
        if (t->slots[i].len == n && memcmp(t->slots[i].name, name, (size_t)n) == 0) {
            return &t->slots[i];
        }
        i = (i + 1) & t->mask;
    }
    return &t->slots[i]; /* the free slot where it belongs */
}

static int
families_grow(Families *t)
{
    size_t capacity = (t->mask + 1) * 2;
    Family *slots = PyMem_Calloc(capacity, sizeof(Family));
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Families bigger = {slots, capacity - 1, t->used, NULL, 0, NULL};
    for (size_t i = 0; i <= t->mask; i++) {
        if (t->slots[i].name != NULL) {
            *families_find(&bigger, t->slots[i].name, t->slots[i].len) = t->slots[i];
        }
    }
    PyMem_Free(t->slots);
    *t = bigger;
    return 0;
}

/* The family of a name as expfmt resolves it (`_sum`, `_count`, `_bucket` of
 * a summary or histogram belong to it), created if new; NULL on error. */
static Family *
family_of(Families *t, const char *name, Py_ssize_t n)
{
    if (t->last != NULL && t->last_len == n && memcmp(t->last_name, name, (size_t)n) == 0) {
        return t->last;
    }
    Family *found = families_find(t, name, n);
    if (found->name != NULL) {
        t->last_name = name;
        t->last_len = n;
        t->last = found;
        return found;
    }
    static const char *suffixes[] = {"_count", "_sum", "_bucket"};
    for (int kind = FAMILY_SUMMARY; kind <= FAMILY_HISTOGRAM; kind++) {
        for (int k = 0; k < (kind == FAMILY_SUMMARY ? 2 : 3); k++) {
            Py_ssize_t len = (Py_ssize_t)strlen(suffixes[k]);
            if (n <= len || memcmp(name + n - len, suffixes[k], (size_t)len) != 0) continue;
            Family *base = families_find(t, name, n - len);
            if (base->name != NULL && (base->flags & FAMILY_TYPE_MASK) == kind) {
                t->last_name = name;
                t->last_len = n;
                t->last = base;
                return base;
            }
        }
    }
    if ((t->used + 1) * 2 > t->mask + 1) {
        if (families_grow(t) < 0) return NULL;
        found = families_find(t, name, n);
    }
    found->name = name;
    found->len = n;
    found->flags = 0;
    t->used++;
    t->last_name = name;
    t->last_len = n;
    t->last = found;
    return found;
}

/* One comment line, from after '#'. 1 valid, 0 bad, -2 error set. */
static int
check_comment(Families *families, const char *s, Py_ssize_t n, int ascii)
{
    Py_ssize_t i = 0;
    while (i < n && is_blank(s[i])) i++;
    Py_ssize_t start = i;
    while (i < n && !is_blank(s[i])) i++;
    int help = (i - start == 4 && memcmp(s + start, "HELP", 4) == 0);
    int type = (i - start == 4 && memcmp(s + start, "TYPE", 4) == 0);
    if (!help && !type) return 1;
    while (i < n && is_blank(s[i])) i++;
    if (i == n) return 1;
    start = i;
    if (name_start(s[i])) {
        while (i < n && name_char(s[i])) i++;
    }
    if (i == n) return 1;
    if (!is_blank(s[i])) return 0;
    Family *family = family_of(families, s + start, i - start);
    if (family == NULL) return -2;
    while (i < n && is_blank(s[i])) i++;
    int result = 1;
    if (i == n) {
        /* nothing after the name */
    } else if (help) {
        if (family->flags & FAMILY_HELP) {
            result = 0;
        } else {
            const char *k = s + i, *end = s + n;
            while (result && (k = memchr(k, '\\', (size_t)(end - k))) != NULL) {
                if (k + 1 < end && (k[1] == '\\' || k[1] == 'n')) {
                    k += 2;
                } else {
                    result = 0;
                }
            }
            if (result && !ascii && !valid_utf8((const unsigned char *)s + i, n - i)) result = 0;
            family->flags |= FAMILY_HELP;
        }
    } else {
        long kind = 0;
        if (ieq(s + i, n - i, "counter")) kind = FAMILY_COUNTER;
        else if (ieq(s + i, n - i, "gauge")) kind = FAMILY_GAUGE;
        else if (ieq(s + i, n - i, "summary")) kind = FAMILY_SUMMARY;
        else if (ieq(s + i, n - i, "histogram")) kind = FAMILY_HISTOGRAM;
        else if (ieq(s + i, n - i, "untyped")) kind = FAMILY_UNTYPED;
        if (kind == 0 || (family->flags & FAMILY_TYPE_MASK)) {
            result = 0;
        } else {
            family->flags |= kind;
        }
    }
    return result;
}

/* One sample line. 1 valid, 0 bad, UNDECIDED, -2 error set. */
static int
check_sample(Families *families, const char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    if (!name_start(s[0])) return 0;
    while (i < n && name_char(s[i])) i++;
    Family *family = family_of(families, s, i);
    if (family == NULL) return -2;
    if ((family->flags & FAMILY_TYPE_MASK) == 0) family->flags |= FAMILY_UNTYPED;
    long kind = family->flags & FAMILY_TYPE_MASK;
    while (i < n && is_blank(s[i])) i++;
    if (i < n && s[i] == '{') {
        const char *names[MAX_LABELS];
        Py_ssize_t lens[MAX_LABELS];
        int count = 0;
        i++;
        for (;;) {
            while (i < n && is_blank(s[i])) i++;
            if (i < n && s[i] == '}') {
                i++;
                break;
            }
            if (i >= n || !label_start(s[i])) return 0;
            Py_ssize_t start = i;
            while (i < n && label_char(s[i])) i++;
            const char *label = s + start;
            Py_ssize_t len = i - start;
            if (len == 8 && memcmp(label, "__name__", 8) == 0) return 0;
            while (i < n && is_blank(s[i])) i++;
            if (i >= n || s[i] != '=') return 0;
            int special = (kind == FAMILY_SUMMARY && len == 8 && memcmp(label, "quantile", 8) == 0) ||
                          (kind == FAMILY_HISTOGRAM && len == 2 && memcmp(label, "le", 2) == 0);
            if (!special) {
                for (int k = 0; k < count; k++) {
                    if (lens[k] == len && memcmp(names[k], label, (size_t)len) == 0) return 0;
                }
                if (count == MAX_LABELS) return UNDECIDED;
                names[count] = label;
                lens[count] = len;
                count++;
            }
            i++;
            while (i < n && is_blank(s[i])) i++;
            if (i >= n || s[i] != '"') return 0;
            i++;
            Py_ssize_t value = i;
            int ascii = 1;
            while (i < n && s[i] != '"') {
                if (s[i] == '\\') {
                    if (i + 1 < n && (s[i + 1] == '"' || s[i + 1] == '\\' || s[i + 1] == 'n')) {
                        i += 2;
                        continue;
                    }
                    return 0;
                }
                if ((unsigned char)s[i] >= 0x80) ascii = 0;
                i++;
            }
            if (i >= n) return 0;
            if (!ascii && !valid_utf8((const unsigned char *)s + value, i - value)) return 0;
            if (special) {
                int ok = check_float(s + value, i - value);
                if (ok != 1) return ok;
            }
            i++;
            while (i < n && is_blank(s[i])) i++;
            if (i < n && s[i] == ',') {
                i++;
                continue;
            }
            if (i < n && s[i] == '}') {
                i++;
                break;
            }
            return 0;
        }
        while (i < n && is_blank(s[i])) i++;
    }
    Py_ssize_t start = i;
    while (i < n && !is_blank(s[i])) i++;
    int ok = check_float(s + start, i - start);
    if (ok != 1) return ok;
    if (i == n) return 1;
    while (i < n && is_blank(s[i])) i++;
    start = i;
    while (i < n && !is_blank(s[i])) i++;
    ok = check_int64(s + start, i - start);
    if (ok != 1) return ok;
    return i == n ? 1 : 0;
}

static PyObject *
check_exposition(PyObject *module, PyObject *arg)
{
    (void)module;
    if (!PyBytes_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "expected bytes, not %.100s", Py_TYPE(arg)->tp_name);
        return NULL;
    }
    const char *body = PyBytes_AS_STRING(arg);
    Py_ssize_t size = PyBytes_GET_SIZE(arg);
    Families families = {PyMem_Calloc(512, sizeof(Family)), 511, 0, NULL, 0, NULL};
    if (families.slots == NULL) return PyErr_NoMemory();
    Py_ssize_t line = 0, pos = 0;
    long answer = 0;
    /* Most bodies are ASCII: then no UTF-8 check is needed anywhere. */
    int ascii = 1;
    Py_ssize_t k = 0;
    for (; ascii && k + 8 <= size; k += 8) {
        uint64_t word;
        memcpy(&word, body + k, 8);
        ascii = (word & 0x8080808080808080ULL) == 0;
    }
    for (; ascii && k < size; k++) {
        ascii = (unsigned char)body[k] < 0x80;
    }
    while (pos < size) {
        line++;
        const char *newline = memchr(body + pos, '\n', (size_t)(size - pos));
        Py_ssize_t end = newline ? newline - body : size;
        Py_ssize_t i = pos;
        while (i < end && is_blank(body[i])) i++;
        int ok = 1;
        if (i < end) {
            if (body[i] == '#') {
                ok = check_comment(&families, body + i + 1, end - i - 1, ascii);
            } else {
                ok = check_sample(&families, body + i, end - i);
            }
        }
        if (ok == -2) {
            PyMem_Free(families.slots);
            return NULL;
        }
        if (ok != 1) {
            answer = ok == UNDECIDED ? -1 : (long)line;
            break;
        }
        pos = end + 1;
    }
    PyMem_Free(families.slots);
    return PyLong_FromLong(answer);
}

/* parse_samples(body) is remote_write.text.python_parse_page for a page that
 * parses: a list of (series key, value, timestamp or None), the same objects
 * with the same values. For anything else (a bad line, or a number too long
 * to decide here) it returns None and the Python parser, which is the
 * reference, says what is wrong. */

/* One label block from s[i] == '{'; the index after its '}', or -1 when malformed. */
static Py_ssize_t
skip_label_block(const char *s, Py_ssize_t i, Py_ssize_t n)
{
    i++;
    for (;;) {
        while (i < n && is_blank(s[i])) i++;
        if (i < n && s[i] == '}') return i + 1;
        if (i >= n || !label_start(s[i])) return -1;
        while (i < n && label_char(s[i])) i++;
        while (i < n && is_blank(s[i])) i++;
        if (i >= n || s[i] != '=') return -1;
        i++;
        while (i < n && is_blank(s[i])) i++;
        if (i >= n || s[i] != '"') return -1;
        i++;
        while (i < n && s[i] != '"') {
            if (s[i] == '\\') {
                if (i + 1 < n && (s[i + 1] == '"' || s[i + 1] == '\\' || s[i + 1] == 'n')) {
                    i += 2;
                    continue;
                }
                return -1;
            }
            i++;
        }
        if (i >= n) return -1;
        i++;
        while (i < n && is_blank(s[i])) i++;
        if (i < n && s[i] == ',') {
            i++;
            continue;
        }
        if (i < n && s[i] == '}') return i + 1;
        return -1;
    }
}

/* 1 and *out set when s[0, n) is [+-]?[0-9]+ within int64 (leading zeros
 * and all), else 0. */
static int
parse_int64(const char *s, Py_ssize_t n, long long *out)
{
    Py_ssize_t i = (n > 0 && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
    int negative = n > 0 && s[0] == '-';
    if (i == n) return 0;
    uint64_t v = 0;
    const uint64_t limit = (uint64_t)INT64_MAX + (uint64_t)negative;
    for (; i < n; i++) {
        if (!is_digit(s[i])) return 0;
        if (v > limit / 10) return 0; /* v * 10 alone is beyond the limit */
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > limit) return 0;
    }
    *out = negative ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(long long)v) : (long long)v;
    return 1;
}

/* One sample line s[0, n) (no leading blank, not a comment), read without
 * making objects: its series key is s[0, key_end). */
typedef struct {
    Py_ssize_t key_end;
    double value;
    int has_stamp;
    long long ms;
} Line;

/* 1 and *line set, 0 leave it to Python. */
static int
scan_sample(const char *s, Py_ssize_t n, Line *line)
{
    Py_ssize_t i = 0;
    if (!name_start(s[0])) return 0;
    while (i < n && name_char(s[i])) i++;
    Py_ssize_t key_end = i;
    while (i < n && is_blank(s[i])) i++;
    if (i < n && s[i] == '{') {
        i = skip_label_block(s, i, n);
        if (i < 0) return 0;
        key_end = i;
        while (i < n && is_blank(s[i])) i++;
    }
    Py_ssize_t start = i;
    while (i < n && !is_blank(s[i])) i++;
    /* UNDECIDED: well-formed, but too long for check_float to say it is in range */
    if (check_float(s + start, i - start) == 0) return 0;
    /* The bytes object's buffer ends in a NUL, so the number always ends. */
    char *end = NULL;
    double value = PyOS_string_to_double(s + start, &end, NULL);
    if (value == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (end != s + i) return 0;
    if (Py_IS_INFINITY(value)) {
        char first = (s[start] == '+' || s[start] == '-') ? s[start + 1] : s[start];
        if (first != 'i' && first != 'I') return 0; /* beyond float64: Go refuses it */
    }
    while (i < n && is_blank(s[i])) i++;
    line->has_stamp = 0;
    if (i < n) {
        start = i;
        while (i < n && !is_blank(s[i])) i++;
        if (!parse_int64(s + start, i - start, &line->ms)) return 0;
        while (i < n && is_blank(s[i])) i++;
        if (i != n) return 0;
        line->has_stamp = 1;
    }
    line->key_end = key_end;
    line->value = value;
    return 1;
}

/* One sample line s[0, n) appended to list: 1 done, 0 leave it to Python, -2 error set. */
static int
parse_sample(PyObject *list, const char *s, Py_ssize_t n)
{
    Line line;
    if (!scan_sample(s, n, &line)) return 0;
    PyObject *stamp = line.has_stamp ? PyLong_FromLongLong(line.ms) : Py_NewRef(Py_None);
    if (stamp == NULL) return -2;
    PyObject *key = PyBytes_FromStringAndSize(s, line.key_end);
    PyObject *number = key ? PyFloat_FromDouble(line.value) : NULL;
    PyObject *sample = number ? PyTuple_New(3) : NULL;
    if (sample == NULL) {
        Py_XDECREF(key);
        Py_XDECREF(number);
        Py_DECREF(stamp);
        return -2;
    }
    PyTuple_SET_ITEM(sample, 0, key);
    PyTuple_SET_ITEM(sample, 1, number);
    PyTuple_SET_ITEM(sample, 2, stamp);
    int failed = PyList_Append(list, sample);
    Py_DECREF(sample);
    return failed ? -2 : 1;
}

static PyObject *
parse_samples(PyObject *module, PyObject *arg)
{
    (void)module;
    if (!PyBytes_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "expected bytes, not %.100s", Py_TYPE(arg)->tp_name);
        return NULL;
    }
    const char *body = PyBytes_AS_STRING(arg);
    Py_ssize_t size = PyBytes_GET_SIZE(arg);
    PyObject *list = PyList_New(0);
    if (list == NULL) return NULL;
    Py_ssize_t pos = 0;
    while (pos < size) {
        const char *newline = memchr(body + pos, '\n', (size_t)(size - pos));
        Py_ssize_t end = newline ? newline - body : size;
        Py_ssize_t i = pos;
        while (i < end && is_blank(body[i])) i++;
        if (i < end && body[i] != '#') {
            int ok = parse_sample(list, body + i, end - i);
            if (ok != 1) {
                Py_DECREF(list);
                if (ok == -2) return NULL;
                Py_RETURN_NONE;
            }
        }
        pos = end + 1;
    }
    return list;
}

/* encode_series(labels, samples) is remote_write.protocol.python_encode_series:
 * one `timeseries` field of a remote-write WriteRequest, the labels (already
 * encoded) followed by a Sample{double value = 1, int64 timestamp = 2} for
 * each (value, timestamp ms). */

static Py_ssize_t
varint_size(uint64_t v)
{
    Py_ssize_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static char *
put_varint(char *out, uint64_t v)
{
    while (v >= 0x80) {
        *out++ = (char)((v & 0x7F) | 0x80);
        v >>= 7;
    }
    *out++ = (char)v;
    return out;
}

static PyObject *
encode_series(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "encode_series expected 2 arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *labels = args[0];
    if (!PyBytes_Check(labels)) {
        PyErr_Format(PyExc_TypeError, "expected bytes, not %.100s", Py_TYPE(labels)->tp_name);
        return NULL;
    }
    PyObject *seq = PySequence_Fast(args[1], "samples must be a sequence");
    if (seq == NULL) return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    /* The samples' values and timestamps, read once: a small array on the stack
     * for the common case of a few samples. */
    double small_values[8];
    uint64_t small_stamps[8];
    double *values = small_values;
    uint64_t *stamps = small_stamps;
    PyObject *result = NULL;
    if (count > 8) {
        values = PyMem_Malloc((size_t)count * sizeof(double));
        stamps = PyMem_Malloc((size_t)count * sizeof(uint64_t));
        if (values == NULL || stamps == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    Py_ssize_t size = PyBytes_GET_SIZE(labels);
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *item = items[k];
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_SetString(PyExc_TypeError, "a sample is a (value, timestamp) tuple");
            goto done;
        }
        values[k] = PyFloat_AsDouble(PyTuple_GET_ITEM(item, 0));
        if (values[k] == -1.0 && PyErr_Occurred()) goto done;
        long long stamp = PyLong_AsLongLong(PyTuple_GET_ITEM(item, 1));
        if (stamp == -1 && PyErr_Occurred()) goto done;
        stamps[k] = (uint64_t)stamp; /* an int64 goes on the wire as its two's complement */
        size += 2 + 10 + varint_size(stamps[k]);
    }
    result = PyBytes_FromStringAndSize(NULL, 1 + varint_size((uint64_t)size) + size);
    if (result == NULL) goto done;
    char *out = PyBytes_AS_STRING(result);
    *out++ = 0x0a;
    out = put_varint(out, (uint64_t)size);
    memcpy(out, PyBytes_AS_STRING(labels), (size_t)PyBytes_GET_SIZE(labels));
    out += PyBytes_GET_SIZE(labels);
    for (Py_ssize_t k = 0; k < count; k++) {
        *out++ = 0x12;
        *out++ = (char)(10 + varint_size(stamps[k]));
        *out++ = 0x09;
        if (PyFloat_Pack8(values[k], out, 1) < 0) {
            Py_CLEAR(result);
            goto done;
        }
        out += 8;
        *out++ = 0x10;
        out = put_varint(out, stamps[k]);
    }
done:
    if (values != small_values) PyMem_Free(values);
    if (stamps != small_stamps) PyMem_Free(stamps);
    Py_DECREF(seq);
    return result;
}

/* One TimeSeries field per sample, labels[k] (bytes) with (values[k], stamps[k]),
 * concatenated: what encode_series writes for each, in one bytes. */
static PyObject *
write_page(PyObject *const *labels, const double *values, const uint64_t *stamps, Py_ssize_t count)
{
    Py_ssize_t size = 0;
    for (Py_ssize_t k = 0; k < count; k++) {
        Py_ssize_t series = PyBytes_GET_SIZE(labels[k]) + 2 + 10 + varint_size(stamps[k]);
        size += 1 + varint_size((uint64_t)series) + series;
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, size);
    if (result == NULL) return NULL;
    char *out = PyBytes_AS_STRING(result);
    for (Py_ssize_t k = 0; k < count; k++) {
        Py_ssize_t length = PyBytes_GET_SIZE(labels[k]);
        Py_ssize_t stamp_size = varint_size(stamps[k]);
        *out++ = 0x0a;
        out = put_varint(out, (uint64_t)(length + 2 + 10 + stamp_size));
        memcpy(out, PyBytes_AS_STRING(labels[k]), (size_t)length);
        out += length;
        *out++ = 0x12;
        *out++ = (char)(10 + stamp_size);
        *out++ = 0x09;
        if (PyFloat_Pack8(values[k], out, 1) < 0) {
            Py_DECREF(result);
            return NULL;
        }
        out += 8;
        *out++ = 0x10;
        out = put_varint(out, stamps[k]);
    }
    return result;
}

/* encode_page(known, rows, at) is the repeated-page path of
 * outputs.rw_series.scrape_samples in one call: when the rows' series keys
 * are exactly known's keys in known's order, the concatenation of
 * encode_series(labels, ((value, at if stamp is None else stamp),)) for each
 * row, labels being known's value for the row's key; otherwise None (the
 * Python path then labels the page line by line). */
static PyObject *
encode_page(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "encode_page expected 3 arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *known = args[0], *rows = args[1];
    if (!PyDict_Check(known) || !PyList_Check(rows)) {
        PyErr_SetString(PyExc_TypeError, "encode_page(dict, list, int)");
        return NULL;
    }
    long long at = PyLong_AsLongLong(args[2]);
    if (at == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t count = PyList_GET_SIZE(rows);
    if (PyDict_GET_SIZE(known) != count) Py_RETURN_NONE;
    double *values = PyMem_Malloc((size_t)(count ? count : 1) * sizeof(double));
    uint64_t *stamps = PyMem_Malloc((size_t)(count ? count : 1) * sizeof(uint64_t));
    PyObject **labels = PyMem_Malloc((size_t)(count ? count : 1) * sizeof(PyObject *));
    PyObject *result = NULL;
    if (values == NULL || stamps == NULL || labels == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    for (Py_ssize_t k = 0; k < count; k++) {
        if (!PyDict_Next(known, &pos, &key, &value)) {
            result = Py_NewRef(Py_None); /* the dict changed under us: let Python decide */
            goto done;
        }
        PyObject *row = PyList_GET_ITEM(rows, k);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != 3) {
            PyErr_SetString(PyExc_TypeError, "a row is a (key, value, timestamp) tuple");
            goto done;
        }
        PyObject *row_key = PyTuple_GET_ITEM(row, 0);
        if (row_key != key) {
            int same = PyObject_RichCompareBool(row_key, key, Py_EQ);
            if (same < 0) goto done;
            if (!same) {
                result = Py_NewRef(Py_None);
                goto done;
            }
        }
        if (!PyBytes_Check(value)) {
            PyErr_SetString(PyExc_TypeError, "known labels must be bytes");
            goto done;
        }
        labels[k] = value;
        values[k] = PyFloat_AsDouble(PyTuple_GET_ITEM(row, 1));
        if (values[k] == -1.0 && PyErr_Occurred()) goto done;
        PyObject *stamp = PyTuple_GET_ITEM(row, 2);
        long long ms = at;
        if (stamp != Py_None) {
            ms = PyLong_AsLongLong(stamp);
            if (ms == -1 && PyErr_Occurred()) goto done;
        }
        stamps[k] = (uint64_t)ms; /* an int64 goes on the wire as its two's complement */
    }
    result = write_page(labels, values, stamps, count);
done:
    PyMem_Free(values);
    PyMem_Free(stamps);
    PyMem_Free(labels);
    return result;
}

/* encode_known_page(body, known, at) is encode_page(known, parse_samples(body), at)
 * without the rows: the page read line by line, each series key compared with
 * known's next key in place, values and timestamps kept in arrays. None when
 * parse_samples would not give rows (a line left to Python) or the keys are
 * not known's, in order; the caller then takes the long way. */
static PyObject *
encode_known_page(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "encode_known_page expected 3 arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *arg = args[0], *known = args[1];
    if (!PyBytes_Check(arg) || !PyDict_Check(known)) {
        PyErr_SetString(PyExc_TypeError, "encode_known_page(bytes, dict, int)");
        return NULL;
    }
    long long at = PyLong_AsLongLong(args[2]);
    if (at == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t count = PyDict_GET_SIZE(known);
    double *values = PyMem_Malloc((size_t)(count ? count : 1) * sizeof(double));
    uint64_t *stamps = PyMem_Malloc((size_t)(count ? count : 1) * sizeof(uint64_t));
    PyObject **labels = PyMem_Malloc((size_t)(count ? count : 1) * sizeof(PyObject *));
    PyObject *result = NULL;
    if (values == NULL || stamps == NULL || labels == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const char *body = PyBytes_AS_STRING(arg);
    Py_ssize_t size = PyBytes_GET_SIZE(arg);
    Py_ssize_t pos = 0, dict_pos = 0, k = 0;
    PyObject *key, *value;
    while (pos < size) {
        const char *newline = memchr(body + pos, '\n', (size_t)(size - pos));
        Py_ssize_t end = newline ? newline - body : size;
        Py_ssize_t i = pos;
        while (i < end && is_blank(body[i])) i++;
        if (i < end && body[i] != '#') {
            Line line;
            if (!scan_sample(body + i, end - i, &line) || k == count ||
                !PyDict_Next(known, &dict_pos, &key, &value) || !PyBytes_Check(key) ||
                PyBytes_GET_SIZE(key) != line.key_end ||
                memcmp(PyBytes_AS_STRING(key), body + i, (size_t)line.key_end) != 0) {
                result = Py_NewRef(Py_None);
                goto done;
            }
            if (!PyBytes_Check(value)) {
                PyErr_SetString(PyExc_TypeError, "known labels must be bytes");
                goto done;
            }
            labels[k] = value;
            values[k] = line.value;
            /* an int64 goes on the wire as its two's complement */
            stamps[k] = (uint64_t)(line.has_stamp ? line.ms : at);
            k++;
        }
        pos = end + 1;
    }
    result = k == count ? write_page(labels, values, stamps, count) : Py_NewRef(Py_None);
done:
    PyMem_Free(values);
    PyMem_Free(stamps);
    PyMem_Free(labels);
    return result;
}

/* count_samples(body) is what exposition._count_samples returns: the lines
 * whose first character after blanks (space, tab) is neither '#' nor white
 * space. The regex builds a list of one match per sample line; this only
 * counts them. */
static PyObject *
count_samples(PyObject *module, PyObject *arg)
{
    (void)module;
    if (!PyBytes_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "expected bytes, not %.100s", Py_TYPE(arg)->tp_name);
        return NULL;
    }
    const char *body = PyBytes_AS_STRING(arg);
    Py_ssize_t size = PyBytes_GET_SIZE(arg);
    Py_ssize_t pos = 0, samples = 0;
    while (pos < size) {
        while (pos < size && (body[pos] == ' ' || body[pos] == '\t')) pos++;
        if (pos < size) {
            char c = body[pos];
            /* The regex's \s: blanks (skipped), newline, CR, form feed, vertical tab. */
            samples += c != '#' && c != '\n' && c != '\r' && c != '\f' && c != '\v';
        }
        const char *newline = pos < size ? memchr(body + pos, '\n', (size_t)(size - pos)) : NULL;
        if (newline == NULL) break;
        pos = newline - body + 1;
    }
    return PyLong_FromSsize_t(samples);
}

/* has_health_line(body) is False only when no line can be one of the
 * target's own up / scrape_duration_seconds / scrape_samples_scraped lines
 * that exposition.drop_health_series removes: a line that starts (optionally
 * after "#", blanks, HELP or TYPE, blanks) with one of those names followed
 * by a blank, '{', a newline or the end. True means "maybe": the regexes
 * decide. Most pages have none, and this is a memchr per line instead of a
 * regex attempt per line. */
static int
health_name_at(const char *p, const char *end)
{
    static const char *const names[] = {"up", "scrape_duration_seconds", "scrape_samples_scraped"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        size_t n = strlen(names[k]);
        if ((size_t)(end - p) >= n && memcmp(p, names[k], n) == 0) {
            const char *after = p + n;
            if (after == end || *after == ' ' || *after == '\t' || *after == '{' || *after == '\n')
                return 1;
        }
    }
    return 0;
}

static PyObject *
has_health_line(PyObject *module, PyObject *arg)
{
    (void)module;
    if (!PyBytes_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "expected bytes, not %.100s", Py_TYPE(arg)->tp_name);
        return NULL;
    }
    const char *p = PyBytes_AS_STRING(arg);
    const char *end = p + PyBytes_GET_SIZE(arg);
    while (p < end) {
        const char *name = p;
        if (*p == '#') {
            const char *q = p + 1;
            while (q < end && (*q == ' ' || *q == '\t')) q++;
            if (q > p + 1 && end - q >= 4 && (memcmp(q, "HELP", 4) == 0 || memcmp(q, "TYPE", 4) == 0)) {
                const char *r = q + 4;
                while (r < end && (*r == ' ' || *r == '\t')) r++;
                if (r > q + 4) name = r;
            }
        }
        if (health_name_at(name, end)) Py_RETURN_TRUE;
        const char *newline = memchr(p, '\n', (size_t)(end - p));
        if (newline == NULL) break;
        p = newline + 1;
    }
    Py_RETURN_FALSE;
}

/* rewrite_known(body, lines) is poller.rewrite's steady state: a page whose
 * every series key is in `lines` (key -> None to drop it, b"" to keep the line
 * as written, or the key to write instead), rewritten line by line. TYPE and
 * HELP lines stay for the families that keep a sample; other comments and
 * blank lines go. Returns (body, samples kept), or None for anything the
 * Python pass must decide: a key not in `lines`, a line that does not parse,
 * a family whose lines are not all in one run (Python groups them). */

typedef struct {
    char *data;
    Py_ssize_t len, cap;
} Buffer;

static int
buffer_put(Buffer *b, const char *s, Py_ssize_t n)
{
    if (b->len + n > b->cap) {
        Py_ssize_t cap = (b->cap + n) * 2;
        char *data = PyMem_Realloc(b->data, (size_t)cap);
        if (data == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}

/* Suffixes that put a sample in a typed family named without them (rewrite._SUFFIXES). */
static const char *family_suffixes[] = {"_bucket", "_count", "_sum", "_total", "_created", "_info"};
#define N_FAMILY_SUFFIXES 6
#define PENDING_MAX 8

/* The length of `name` without the family suffix it ends with, or 0. */
static Py_ssize_t
base_len(const char *name, Py_ssize_t n)
{
    for (int k = 0; k < N_FAMILY_SUFFIXES; k++) {
        Py_ssize_t len = (Py_ssize_t)strlen(family_suffixes[k]);
        if (n > len && memcmp(name + n - len, family_suffixes[k], (size_t)len) == 0) {
            return n - len;
        }
    }
    return 0;
}

/* families_find with the name's hash already taken (name_hash), so a family's
 * few lookups hash its name once. */
static Family *
families_find_hashed(Families *t, const char *name, Py_ssize_t n, size_t h)
{
    size_t i = h & t->mask;
    while (t->slots[i].name != NULL) {
        if (t->slots[i].len == n && memcmp(t->slots[i].name, name, (size_t)n) == 0) {
            return &t->slots[i];
        }
        i = (i + 1) & t->mask;
    }
    return &t->slots[i];
}

static int
has(Families *t, const char *name, Py_ssize_t n, size_t h)
{
    return n > 0 && families_find_hashed(t, name, n, h)->name != NULL;
}

static int
remember(Families *seen, const char *name, Py_ssize_t n, size_t h)
{
    if (n == 0) return 0;
    Family *slot = families_find_hashed(seen, name, n, h);
    if (slot->name != NULL) return 0;
    if ((seen->used + 1) * 2 > seen->mask + 1) {
        if (families_grow(seen) < 0) return -2;
        slot = families_find_hashed(seen, name, n, h);
    }
    slot->name = name;
    slot->len = n;
    slot->flags = 0;
    seen->used++;
    return 0;
}

/* A family left behind: its name, and its base if it has one. */
static int
pass_family(Families *seen, Families *bases, const char *name, Py_ssize_t n, size_t h)
{
    if (remember(seen, name, n, h) < 0) return -2;
    Py_ssize_t base = base_len(name, n);
    return base ? remember(bases, name, base, name_hash(name, base)) : 0;
}

/* Whether sample `name` belongs to the family `fam` (typed: a TYPE line named it). */
static int
in_family(const char *name, Py_ssize_t n, const char *fam, Py_ssize_t fn, int typed)
{
    if (n == fn && memcmp(name, fam, (size_t)n) == 0) return 1;
    if (!typed || n <= fn || memcmp(name, fam, (size_t)fn) != 0) return 0;
    for (int k = 0; k < N_FAMILY_SUFFIXES; k++) {
        Py_ssize_t len = (Py_ssize_t)strlen(family_suffixes[k]);
        if (n - fn == len && memcmp(name + fn, family_suffixes[k], (size_t)len) == 0) return 1;
    }
    return 0;
}

static PyObject *
rewrite_known(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4 || !PyBytes_Check(args[0]) || !PyDict_Check(args[1]) || !PyList_Check(args[2])
        || !PyList_Check(args[3]) || PyList_GET_SIZE(args[2]) != PyList_GET_SIZE(args[3])) {
        PyErr_SetString(PyExc_TypeError,
                        "rewrite_known(body: bytes, lines: dict, keys: list, actions: list)");
        return NULL;
    }
    const char *body = PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    PyObject *lines = args[1];
    /* The keys of the last page in order, and lines[key] for each: a page like
     * the last one costs a memcmp per sample instead of a bytes object, a hash
     * and a lookup. Entries are only ever taken from `lines`, so they stay
     * right however a call ends; the caller replaces both when `lines` changes. */
    PyObject *order_keys = args[2], *order_actions = args[3];
    Py_ssize_t index = 0;
    Buffer out = {NULL, 0, 0};
    /* Families already passed, and the names they would belong to if typed
     * (node_x_total: node_x): a family seen twice is Python's to group. */
    Families seen = {PyMem_Calloc(512, sizeof(Family)), 511, 0, NULL, 0, NULL};
    Families bases = {PyMem_Calloc(512, sizeof(Family)), 511, 0, NULL, 0, NULL};
    if (seen.slots == NULL || bases.slots == NULL) {
        PyMem_Free(seen.slots);
        PyMem_Free(bases.slots);
        return PyErr_NoMemory();
    }
    out.cap = size + 64;
    out.data = PyMem_Malloc((size_t)out.cap);
    if (out.data == NULL) {
        PyMem_Free(seen.slots);
        PyMem_Free(bases.slots);
        return PyErr_NoMemory();
    }
    /* The current family: a run of TYPE/HELP lines and the samples after it. */
    const char *fam = NULL;
    Py_ssize_t fam_len = 0;
    size_t fam_hash = 0;
    int typed = 0, flushed = 0, npending = 0, bail = 0;
    Py_ssize_t pending[PENDING_MAX][2];
    Py_ssize_t kept = 0;
    Py_ssize_t pos = 0;
    while (pos < size && !bail) {
        const char *newline = memchr(body + pos, '\n', (size_t)(size - pos));
        Py_ssize_t end = newline ? newline - body : size;
        Py_ssize_t line_start = pos;
        pos = end + 1;
        if (end == line_start) continue;
        if (body[line_start] == '#') {
            /* `#[ \t]+(TYPE|HELP)[ \t]+name`, as rewrite._COMMENT; other comments go */
            Py_ssize_t i = line_start + 1, j;
            if (i >= end || !is_blank(body[i])) continue;
            while (i < end && is_blank(body[i])) i++;
            if (end - i < 5 || (memcmp(body + i, "TYPE", 4) != 0 && memcmp(body + i, "HELP", 4) != 0)
                || !is_blank(body[i + 4])) {
                continue;
            }
            int is_type = body[i] == 'T';
            i += 4;
            while (i < end && is_blank(body[i])) i++;
            if (i >= end || !name_start(body[i])) continue;
            for (j = i; j < end && name_char(body[j]); j++);
            if (fam == NULL || j - i != fam_len || memcmp(body + i, fam, (size_t)fam_len) != 0) {
                /* A new family: never seen, nor the base of one seen. */
                if (fam != NULL && pass_family(&seen, &bases, fam, fam_len, fam_hash) < 0) {
                    goto error;
                }
                size_t h = name_hash(body + i, j - i);
                if (has(&seen, body + i, j - i, h) || has(&bases, body + i, j - i, h)) {
                    bail = 1;
                    break;
                }
                fam = body + i;
                fam_len = j - i;
                fam_hash = h;
                typed = flushed = npending = 0;
            }
            typed |= is_type;
            if (flushed) {
                bail = 1; /* a comment after its family's samples: Python moves it */
                break;
            }
            if (npending == PENDING_MAX) {
                bail = 1;
                break;
            }
            pending[npending][0] = line_start;
            pending[npending][1] = end - line_start;
            npending++;
            continue;
        }
        if (is_blank(body[line_start])) {
            /* Python spells the values of such a page anew (its lines and samples no
             * longer align, or the line does not start with its key): its to do. */
            bail = 1;
            break;
        }
        const char *s = body + line_start;
        Py_ssize_t i = line_start;
        Py_ssize_t n = end - i, k = 0;
        if (!name_start(s[0])) {
            bail = 1;
            break;
        }
        while (k < n && name_char(s[k])) k++;
        Py_ssize_t name_len = k, key_end = k;
        while (k < n && is_blank(s[k])) k++;
        if (k < n && s[k] == '{') {
            k = skip_label_block(s, k, n);
            if (k < 0) {
                bail = 1;
                break;
            }
            key_end = k;
            while (k < n && is_blank(s[k])) k++;
        }
        Py_ssize_t start = k;
        while (k < n && !is_blank(s[k])) k++;
        if (check_float(s + start, k - start) != 1) {
            bail = 1;
            break;
        }
        while (k < n && is_blank(s[k])) k++;
        if (k < n) {
            start = k;
            while (k < n && !is_blank(s[k])) k++;
            long long ms;
            if (!parse_int64(s + start, k - start, &ms)) {
                bail = 1;
                break;
            }
            while (k < n && is_blank(s[k])) k++;
            if (k != n) {
                bail = 1;
                break;
            }
        }
        /* Its family: the current one, or (no TYPE/HELP before it) its own name. */
        if (fam == NULL || !in_family(s, name_len, fam, fam_len, typed)) {
            if (fam != NULL && pass_family(&seen, &bases, fam, fam_len, fam_hash) < 0) {
                goto error;
            }
            size_t h = name_hash(s, name_len);
            Py_ssize_t base = base_len(s, name_len);
            if (has(&seen, s, name_len, h) || has(&bases, s, name_len, h)
                || (base && has(&seen, s, base, name_hash(s, base)))) {
                bail = 1;
                break;
            }
            fam = s;
            fam_len = name_len;
            fam_hash = h;
            typed = flushed = npending = 0;
        }
        PyObject *found = NULL;
        if (index < PyList_GET_SIZE(order_keys)) {
            PyObject *known = PyList_GET_ITEM(order_keys, index);
            if (PyBytes_GET_SIZE(known) == key_end
                && memcmp(PyBytes_AS_STRING(known), s, (size_t)key_end) == 0) {
                found = PyList_GET_ITEM(order_actions, index);
            }
        }
        if (found == NULL) {
            PyObject *key = PyBytes_FromStringAndSize(s, key_end);
            if (key == NULL) goto error;
            found = PyDict_GetItemWithError(lines, key);
            if (found == NULL) {
                Py_DECREF(key);
                if (PyErr_Occurred()) goto error;
                bail = 1;
                break;
            }
            if (index < PyList_GET_SIZE(order_keys)) {
                PyList_SetItem(order_keys, index, key); /* steals key */
                PyList_SetItem(order_actions, index, Py_NewRef(found));
            } else {
                int failed = PyList_Append(order_keys, key) || PyList_Append(order_actions, found);
                Py_DECREF(key);
                if (failed) goto error;
            }
        }
        index++;
        if (found == Py_None) continue;
        if (!PyBytes_Check(found)) {
            bail = 1;
            break;
        }
        if (!flushed) {
            for (int p = 0; p < npending; p++) {
                if (buffer_put(&out, body + pending[p][0], pending[p][1]) < 0
                    || buffer_put(&out, "\n", 1) < 0) {
                    goto error;
                }
            }
            flushed = 1;
        }
        Py_ssize_t written = PyBytes_GET_SIZE(found);
        if ((written ? buffer_put(&out, PyBytes_AS_STRING(found), written)
                     : buffer_put(&out, s, key_end)) < 0
            || buffer_put(&out, s + key_end, n - key_end) < 0 || buffer_put(&out, "\n", 1) < 0) {
            goto error;
        }
        kept++;
    }
    PyMem_Free(seen.slots);
    PyMem_Free(bases.slots);
    if (!bail && index < PyList_GET_SIZE(order_keys)
        && (PyList_SetSlice(order_keys, index, PyList_GET_SIZE(order_keys), NULL) < 0
            || PyList_SetSlice(order_actions, index, PyList_GET_SIZE(order_actions), NULL) < 0)) {
        PyMem_Free(out.data);
        return NULL;
    }
    if (bail) {
        PyMem_Free(out.data);
        Py_RETURN_NONE;
    }
    PyObject *result = Py_BuildValue("(y#n)", out.data, kept ? out.len : 0, kept);
    PyMem_Free(out.data);
    return result;
error:
    PyMem_Free(seen.slots);
    PyMem_Free(bases.slots);
    PyMem_Free(out.data);
    return NULL;
}

static PyMethodDef methods[] = {
    {"strip_final_values", strip_final_values, METH_O,
     "strip_final_values(body, /)\n--\n\n"
     "The body without the value ending each line, and how many were taken out."},
    {"count_samples", count_samples, METH_O,
     "count_samples(body, /)\n--\n\n"
     "The number of sample lines: neither comments nor blank."},
    {"has_health_line", has_health_line, METH_O,
     "has_health_line(body, /)\n--\n\n"
     "False when no line can be a target's own up or scrape_* line."},
    {"check_exposition", check_exposition, METH_O,
     "check_exposition(body, /)\n--\n\n"
     "0 when the body is valid exposition text, else the first bad line's number"
     " (-1: undecided here)."},
    {"parse_samples", parse_samples, METH_O,
     "parse_samples(body, /)\n--\n\n"
     "Every sample line as (series key, value, timestamp or None); None when a line"
     " does not parse (or is left to the Python parser)."},
    {"encode_known_page", (PyCFunction)(void (*)(void))encode_known_page, METH_FASTCALL,
     "encode_known_page(body, known, at, /)\n--\n\n"
     "encode_page(known, parse_samples(body), at) without making the rows; None when"
     " either would be None."},
    {"encode_page", (PyCFunction)(void (*)(void))encode_page, METH_FASTCALL,
     "encode_page(known, rows, at, /)\n--\n\n"
     "A repeated page's TimeSeries fields in one bytes; None unless the rows' keys are"
     " known's, in order."},
    {"rewrite_known", (PyCFunction)(void (*)(void))rewrite_known, METH_FASTCALL,
     "rewrite_known(body, lines, keys, actions, /)\n--\n\n"
     "A page whose every series key is in lines, rewritten: (body, samples kept), or None."},
    {"encode_series", (PyCFunction)(void (*)(void))encode_series, METH_FASTCALL,
     "encode_series(labels, samples, /)\n--\n\n"
     "One remote-write TimeSeries field: encoded labels, then (value, timestamp ms) samples."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_speedups", "The receiver's hot loop over a body, in C.", 0,
    methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    const char *chars = "-+.0123456789eEaInNf";
    for (const char *c = chars; *c; c++) {
        value_char[(unsigned char)*c] = 1;
    }
    init_char_class();
    return PyModule_Create(&module_def);
}
