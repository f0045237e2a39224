"""Building blocks of :mod:`dethrone_router.gateway.compiled`.

* :mod:`.program` - the compiled scoring program: reading the input columns, the
  preprocessing blocks, the head, and the two exceptions (:class:`.program.Unsupported`
  at compile time, :class:`.program.Delegate` at call time);
* :mod:`.preprocess` - ``ColumnTransformer``, ``SimpleImputer``, ``StandardScaler``,
  ``OneHotEncoder`` as numpy functions;
* :mod:`.trees` - tree ensembles flattened into arrays, evaluated level by level;
* :mod:`.linear` - linear regression and logistic heads;
* :mod:`.verify` - the edge rows and the comparison against the model's own methods.
"""
