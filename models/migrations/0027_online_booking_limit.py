from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0026_form_request_key')]

    initial = False

    # How many upcoming online bookings a client may hold (0: no limit); 3 for every practice.

    operations = [
        ops.AddField(
            model_name='Practice',
            name='online_bookings_per_client',
            field=fields.SmallIntField(default=3, db_default=3),
        ),
    ]
