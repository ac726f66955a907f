/* Scanning exposition text: character classes, UTF-8, numbers, and the
 * table of metric families by name that check and rewrite both keep. */
#include "_speedups.h"

#include <float.h>

unsigned char char_class[256];

void
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
/* Strict UTF-8 as Go's utf8.Valid and Python's decoder take it. */
int
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

int
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
int
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

/* Powers of ten a double holds exactly: 10^22 is the last (5^22 < 2^53). */
static const double exact_tens[] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* 1 and *out set when s[0, n) is a plain decimal whose digits make an integer
 * w <= 2^53 and whose scale is 10^e with |e| <= 22: w and 10^|e| are then
 * exact doubles, so one IEEE multiplication or division rounds once and gives
 * the correctly rounded value, what PyOS_string_to_double would (Clinger,
 * 1990). 0 for anything else (NaN, Inf, more digits, a larger scale, hex, a
 * malformed number): the caller asks PyOS_string_to_double. */
int
fast_double(const char *s, Py_ssize_t n, double *out)
{
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
    Py_ssize_t i = 0;
    int negative = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
    uint64_t w = 0;
    int significant = 0, digits = 0;
    long scale = 0;
    for (; i < n && is_digit(s[i]); i++, digits++) {
        if (w == 0 && s[i] == '0') continue; /* leading zeros */
        if (++significant > 19) return 0;
        w = w * 10 + (uint64_t)(s[i] - '0');
    }
    if (i < n && s[i] == '.') {
        for (i++; i < n && is_digit(s[i]); i++, digits++) {
            scale--;
            if (w == 0 && s[i] == '0') continue;
            if (++significant > 19) return 0;
            w = w * 10 + (uint64_t)(s[i] - '0');
        }
    }
    if (digits == 0) return 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        int exp_negative = 0;
        if (i < n && (s[i] == '+' || s[i] == '-')) exp_negative = s[i++] == '-';
        long e10 = 0;
        Py_ssize_t exp_start = i;
        for (; i < n && is_digit(s[i]); i++) {
            if (i - exp_start >= 4) return 0;
            e10 = e10 * 10 + (s[i] - '0');
        }
        if (i == exp_start) return 0;
        scale += exp_negative ? -e10 : e10;
    }
    if (i != n || w > ((uint64_t)1 << 53)) return 0;
    double value = (double)w;
    if (w != 0) {
        if (scale < -22 || scale > 22) return 0;
        value = scale < 0 ? value / exact_tens[-scale] : value * exact_tens[scale];
    }
    *out = negative ? -value : value;
    return 1;
#else
    /* Intermediates in wider registers (x87) would round twice. */
    (void)s;
    (void)n;
    (void)out;
    return 0;
#endif
}

int
check_int64(const char *s, Py_ssize_t n)
{
    Py_ssize_t i = (n > 0 && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
    if (i == n) return 0;
    for (Py_ssize_t k = i; k < n; k++) {
        if (!is_digit(s[k])) return 0;
    }
    return n - i <= 18 ? 1 : UNDECIDED;
}
size_t
name_hash(const char *name, Py_ssize_t n)
{
    size_t h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)name[i]) * 1099511628211ULL;
    }
    return h;
}

Family *
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

int
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
Family *
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
