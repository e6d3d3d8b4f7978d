"""The edge where user data meets berg_ray: stimulus arrays checked and made the model's uint8 input (``videos``),
numbers a user wrote read strictly (``numbers``), and what berg_ray prints of text it did not choose: file names as
printable text (``names``), URLs without their credentials (``redact``).
"""
