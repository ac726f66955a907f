#include "_speedups.h"

/* check_exposition(body) answers whether a body is exposition text that the
 * Pushgateway and Prometheus accept, the rules of exposition_check._Walk
 * (which is the reference and says what is wrong): 0 when valid, the number
 * of the first bad line, or -1 when this pass leaves the decision to the
 * walk (a line with very many labels, a very long number). */

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

PyObject *
check_exposition(PyObject *module, PyObject *arg)
{
    (void)module;
    const char *body;
    Py_ssize_t size;
    if (bytes_arg(arg, &body, &size) < 0) return NULL;
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
